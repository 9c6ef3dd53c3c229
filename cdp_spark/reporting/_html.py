"""HTML for the run report: one self-contained page (plotly's JS inlined, PNGs as data URIs).

Every figure a reader sees is also in the page as plain text in an element carrying
``data-metric`` (and ``data-stage`` / ``data-table`` / ``data-bucket`` / ``data-segment`` /
``data-task`` + ``data-model``) with the raw number in ``data-value``: tests and scripts read those.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cdp_spark.reporting.sections import (
    CLASSIFIER_METRICS,
    IdentitySummary,
    ModelsSummary,
    QualitySummary,
    StageRow,
    Unavailable,
)

_METRIC_LABELS = {
    "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "log_loss": "log loss", "calibration_error": "calibration error (ECE)",
    "lift_top_decile": "lift top 10%", "lift_top_2_deciles": "lift top 20%", "base_rate": "base rate", "n": "holdout rows",
}
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;background:#f5f7fa}
header{background:#243b53;color:#fff;padding:18px 32px}header h1{margin:0 0 6px;font-size:22px}
header .meta span{margin-right:24px;font-size:14px;opacity:.9}
main{padding:8px 32px 32px;max-width:1200px}
section{background:#fff;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:16px 20px;margin:18px 0}
h2{font-size:18px;margin:0 0 12px;color:#243b53}h3{font-size:15px;margin:16px 0 8px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{padding:5px 10px;border-bottom:1px solid #e4e7eb;text-align:left}
th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.unavailable{color:#7b8794;font-style:italic}.status-succeeded{color:#137752;font-weight:600}.status-failed{color:#ab091e;font-weight:600}
.kpis{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:8px}.kpi{background:#f0f4f8;border-radius:4px;padding:8px 14px;min-width:120px}
.kpi .v{font-size:20px;font-weight:600}.kpi .l{font-size:12px;color:#52606d}
.plots{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}.plots figure{margin:0}.plots img{max-width:260px;border:1px solid #e4e7eb}
.plots figcaption{font-size:11px;color:#52606d}.champion{background:#fff3c4}.error{color:#ab091e;font-size:12px}
"""


@dataclass(frozen=True)
class ReportData:
    run_id: str
    generated_at: datetime
    stages: list[StageRow] | Unavailable
    quality: QualitySummary | Unavailable
    identity: IdentitySummary | Unavailable
    segments: dict[str, int] | Unavailable
    models: ModelsSummary | Unavailable


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _attrs(**attrs: object) -> str:
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{_e(v)}"' for k, v in attrs.items() if v is not None)


def _num(value: float | int | None, *, metric: str, cls: str = "num", digits: int = 4, **keys: object) -> str:
    """A table cell holding a number as text, with the raw value in ``data-value``."""
    if value is None:
        return f"<td{_attrs(class_=cls, data_metric=metric, **keys)}>–</td>"
    if isinstance(value, int):
        text = f"{value:,}"
    else:
        text = f"{value:,.{digits}f}"
    return f"<td{_attrs(class_=cls, data_metric=metric, data_value=value, **keys)}>{text}</td>"


def _kpi(label: str, value: int, *, metric: str) -> str:
    return f'<div class="kpi"><div class="v"{_attrs(data_metric=metric, data_value=value)}>{value:,}</div><div class="l">{_e(label)}</div></div>'


def _unavailable(title: str, what: Unavailable) -> str:
    return f'<p class="unavailable">{_e(title)}: not available for this run ({_e(what.reason)}).</p>'


def _section(section_id: str, title: str, body: str, *, available: bool) -> str:
    return f'<section id="{section_id}" data-available="{str(available).lower()}"><h2>{_e(title)}</h2>{body}</section>'


def _table(headers: Sequence[str], rows: Iterable[str], *, table_id: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _figure(fig, div_id: str) -> str:
    fig.update_layout(template="plotly_white", margin={"l": 60, "r": 30, "t": 50, "b": 50}, height=340)
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False, "responsive": True})


def _bar(x: Sequence[object], y: Sequence[float | int], *, name: str | None = None, orientation: str = "v", fmt: str = ",d"):
    import plotly.graph_objects as go

    texts = [format(v, fmt) for v in y]
    if orientation == "h":
        return go.Bar(y=list(x), x=list(y), name=name, orientation="h", text=texts, textposition="outside", cliponaxis=False)
    return go.Bar(x=list(x), y=list(y), name=name, text=texts, textposition="outside", cliponaxis=False)


# --------------------------------------------------------------------------- sections


def _stages(stages: list[StageRow] | Unavailable) -> str:
    title = "Stages"
    if isinstance(stages, Unavailable):
        return _section("stages", title, _unavailable(title, stages), available=False)
    import plotly.graph_objects as go

    rows = []
    for s in stages:
        key = {"data_stage": s.stage}
        rows.append(
            f'<tr{_attrs(data_stage=s.stage)}><td>{_e(s.stage)}</td>'
            f'<td{_attrs(class_=f"status-{s.status}", data_metric="status", data_value=s.status, **key)}>{_e(s.status)}</td>'
            f"<td>{s.started_at:%Y-%m-%d %H:%M:%S}</td>"
            + _num(round(s.seconds, 1), metric="seconds", digits=1, **key)
            + _num(s.rows_in, metric="rows_in", **key)
            + _num(s.rows_out, metric="rows_out", **key)
            + _num(s.attempts, metric="attempts", **key)
            + f'<td class="error">{_e(s.error or "")}</td></tr>'
        )
    table = _table(["stage", "status", "started (UTC)", "seconds", "rows in", "rows out", "attempts", "error"], rows, table_id="stage-table")
    names = [s.stage for s in stages]
    timing = go.Figure(_bar(names, [round(s.seconds, 1) for s in stages], orientation="h", fmt=",.1f"))
    timing.update_layout(title="Seconds per stage", yaxis={"autorange": "reversed"}, xaxis_title="seconds")
    volume = go.Figure([_bar(names, [s.rows_in for s in stages], name="rows in"), _bar(names, [s.rows_out for s in stages], name="rows out")])
    volume.update_layout(title="Rows in / out per stage", barmode="group", yaxis_title="rows")
    return _section("stages", title, table + _figure(timing, "chart-stage-seconds") + _figure(volume, "chart-stage-rows"), available=True)


def _quality(quality: QualitySummary | Unavailable, report_dir: Path) -> str:
    title = "Data quality"
    if isinstance(quality, Unavailable):
        return _section("quality", title, _unavailable(title, quality), available=False)
    total = sum(t.expectations for t in quality.tables)
    passed = sum(t.passed for t in quality.tables)
    kpis = '<div class="kpis">' + _kpi("expectations", total, metric="expectations") + _kpi("passed", passed, metric="passed") + _kpi("failed", total - passed, metric="failed") + "</div>"
    severities = sorted({sev for t in quality.tables for sev in t.failed})
    rows = [
        f'<tr{_attrs(data_table=t.table)}><td>{_e(t.table)}</td>'
        + _num(t.expectations, metric="expectations", data_table=t.table)
        + _num(t.passed, metric="passed", data_table=t.table)
        + "".join(_num(t.failed.get(sev, 0), metric=f"failed_{sev}", data_table=t.table) for sev in severities)
        + "</tr>"
        for t in quality.tables
    ]
    table = _table(["table", "expectations", "passed", *(f"failed ({s})" for s in severities)], rows, table_id="quality-table")
    failures = ""
    if quality.failures:
        failures = "<h3>Failed expectations</h3>" + _table(
            ["table", "expectation", "severity", "unexpected", "of rows", "observed"],
            (
                f"<tr><td>{_e(f.table)}</td><td>{_e(f.expectation)}</td><td>{_e(f.severity)}</td>"
                + _num(f.unexpected_count, metric="unexpected_count")
                + _num(f.element_count, metric="element_count")
                + f"<td>{_e(f.observed_value or '')}</td></tr>"
                for f in quality.failures
            ),
            table_id="quality-failures",
        )
    if quality.data_docs_index is not None:
        href = Path(os.path.relpath(quality.data_docs_index, report_dir)).as_posix()
        docs = f'<p>Great Expectations Data Docs: <a id="data-docs-link" href="{_e(href)}">{_e(href)}</a></p>'
    else:
        docs = '<p class="unavailable" id="data-docs-link">Great Expectations Data Docs were not built for this lakehouse.</p>'
    return _section("quality", title, kpis + docs + table + failures, available=True)


def _identity(identity: IdentitySummary | Unavailable) -> str:
    title = "Identity resolution"
    if isinstance(identity, Unavailable):
        return _section("identity", title, _unavailable(title, identity), available=False)
    import plotly.graph_objects as go

    kpis = (
        '<div class="kpis">'
        + _kpi("customers", identity.customers, metric="customers")
        + _kpi("largest customer (records)", identity.largest_component_records, metric="largest_component_records")
        + _kpi("over size alarm", identity.components_over_alarm, metric="components_over_alarm")
        + _kpi("merges", identity.merges, metric="merges")
        + _kpi("splits", identity.splits, metric="splits")
        + _kpi("blocklisted identifiers", identity.blocklisted, metric="blocklisted")
        + "</div>"
    )
    if identity.size_histogram is None:
        return _section("identity", title, kpis + '<p class="unavailable">Component-size histogram: not available for this run (unreadable).</p>', available=True)
    hist = identity.size_histogram
    rows = [f"<tr><td>{_e(b)}</td>" + _num(n, metric="customers", data_bucket=b) + "</tr>" for b, n in hist.items()]
    table = _table(["records per customer", "customers"], rows, table_id="identity-histogram")
    fig = go.Figure(_bar(list(hist), list(hist.values())))
    fig.update_layout(title="Customers by number of records (component size)", xaxis_title="records per customer", yaxis_title="customers", xaxis_type="category")
    return _section("identity", title, kpis + _figure(fig, "chart-identity-histogram") + table, available=True)


def _segments(segments: dict[str, int] | Unavailable) -> str:
    title = "Segments"
    if isinstance(segments, Unavailable):
        return _section("segments", title, _unavailable(title, segments), available=False)
    if not segments:
        return _section("segments", title, '<p class="unavailable">No segments are configured (gold.segments).</p>', available=True)
    import plotly.graph_objects as go

    rows = [f"<tr><td>{_e(name)}</td>" + _num(n, metric="members", data_segment=name) + "</tr>" for name, n in segments.items()]
    table = _table(["segment", "current members"], rows, table_id="segment-table")
    fig = go.Figure(_bar(list(segments), list(segments.values()), orientation="h"))
    fig.update_layout(title="Current members per segment", yaxis={"autorange": "reversed"}, xaxis_title="customers")
    return _section("segments", title, table + _figure(fig, "chart-segments"), available=True)


def _models(models: ModelsSummary | Unavailable) -> str:
    title = "Models"
    if isinstance(models, Unavailable):
        return _section("models", title, _unavailable(title, models), available=False)
    import plotly.graph_objects as go

    champion_runs = {c.mlflow_run_id for c in models.champions.values()}
    classifiers = [r for r in models.runs if r.task != "clv"]
    parts = []
    if classifiers:
        rows = []
        for r in classifiers:
            key = {"data_task": r.task, "data_model": r.kind}
            is_champion = r.mlflow_run_id in champion_runs
            rows.append(
                f'<tr{_attrs(class_="champion" if is_champion else None, data_task=r.task, data_model=r.kind, data_mlflow_run_id=r.mlflow_run_id)}>'
                f"<td>{_e(r.task)}</td><td>{_e(r.kind)}</td>"
                + "".join(_num(int(r.metrics[m]) if m == "n" and m in r.metrics else r.metrics.get(m), metric=m, **key) for m in CLASSIFIER_METRICS)
                + f"<td>{'champion' if is_champion else ''}</td></tr>"
            )
        parts.append(_table(["task", "model", *(_METRIC_LABELS[m] for m in CLASSIFIER_METRICS), ""], rows, table_id="model-table"))
        labels = [f"{r.task} · {r.kind}" for r in classifiers]
        fig = go.Figure([_bar(labels, [round(r.metrics.get(m, 0.0), 4) for r in classifiers], name=_METRIC_LABELS[m], fmt=".3f") for m in ("roc_auc", "pr_auc")])
        fig.update_layout(title="Holdout ROC-AUC and PR-AUC", barmode="group", yaxis={"range": [0, 1.05]})
        parts.append(_figure(fig, "chart-models"))
    if models.champions:
        parts.append(
            "<h3>Current champions</h3>"
            + _table(
                ["task", "registered model", "version", "MLflow run", "from this run"],
                (
                    f'<tr{_attrs(data_task=c.task)}><td>{_e(c.task)}</td><td>{_e(c.model)}</td>'
                    f'<td{_attrs(data_metric="champion_version", data_value=c.version, data_task=c.task)}>{_e(c.version)}</td>'
                    f"<td>{_e(c.mlflow_run_id)}</td><td>{'yes' if c.mlflow_run_id in {r.mlflow_run_id for r in models.runs} else 'no'}</td></tr>"
                    for c in models.champions.values()
                ),
                table_id="champion-table",
            )
        )
    for r in models.runs:
        if r.task == "clv":
            rows = [f"<tr><td>{_e(k)}</td>" + _num(v, metric=k, data_task="clv") + "</tr>" for k, v in sorted(r.metrics.items())]
            parts.append("<h3>CLV (BG/NBD + Gamma-Gamma)</h3>" + _table(["parameter", "value"], rows, table_id="clv-table"))
    for r in classifiers:
        if r.plots:
            figures = "".join(
                f'<figure><img alt="{_e(f"{r.task} {r.kind} {name}")}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
                f"<figcaption>{_e(name)}</figcaption></figure>"
                for name, png in sorted(r.plots.items(), key=lambda kv: _plot_rank(kv[0]))
            )
            parts.append(f'<h3>{_e(r.task)} · {_e(r.kind)}</h3><div class="plots"{_attrs(data_task=r.task, data_model=r.kind)}>{figures}</div>')
    return _section("models", title, "".join(parts), available=True)


def _plot_rank(name: str) -> tuple[int, str]:
    order = ("roc.png", "pr.png", "calibration.png", "lift.png", "feature_importance.png")
    return (order.index(name) if name in order else len(order), name)


def render(data: ReportData, report_dir: Path) -> str:
    """The whole report page."""
    from plotly.offline import get_plotlyjs

    stages = data.stages if not isinstance(data.stages, Unavailable) else []
    status = "failed" if any(s.status != "succeeded" for s in stages) else ("succeeded" if stages else "unknown")
    total = sum(s.seconds for s in stages)
    started = f"{min(s.started_at for s in stages):%Y-%m-%d %H:%M:%S} UTC" if stages else "–"
    header = (
        f'<header><h1>cdp-spark run <span id="run-id" data-value="{_e(data.run_id)}">{_e(data.run_id)}</span></h1><div class="meta">'
        f'<span>status: <b id="run-status" data-value="{status}">{status}</b></span><span>started: {started}</span>'
        f'<span>stage time: <b id="run-seconds" data-value="{total:.1f}">{total:,.1f} s</b></span>'
        f"<span>report generated {data.generated_at:%Y-%m-%d %H:%M:%S} UTC</span></div></header>"
    )
    body = (
        _stages(data.stages) + _quality(data.quality, report_dir) + _identity(data.identity) + _segments(data.segments) + _models(data.models)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>cdp-spark run {_e(data.run_id)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body>{header}<main>{body}</main></body></html>\n"
    )
