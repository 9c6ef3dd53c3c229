"""The HTML run report: its numbers against the run metadata, rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from cdp_spark.config import parse_config
from cdp_spark.errors import CdpError
from cdp_spark.lake import Lake
from cdp_spark.ops import RUN_LOG_SCHEMA
from cdp_spark.reporting import build_run_report

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)
_VOID = ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr")
KEYS = ("data-stage", "data-table", "data-bucket", "data-segment", "data-task", "data-model")


class _Page(HTMLParser):
    """What a test reads from a report page: ``data-metric`` cells, sections, and plotly's drawn bar labels."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[tuple, tuple[str | None, str]] = {}  # (metric, *keys) -> (data-value, text)
        self.sections: dict[str, str] = {}  # id -> data-available
        self.section_text: dict[str, str] = {}
        self.bar_labels: dict[str, list[list[str]]] = {}  # chart div id -> per trace, the bar texts drawn
        self._open: list[tuple[str, tuple, list[str]]] = []
        self._section: str | None = None
        self._chart: tuple[str, int] | None = None  # (div id, depth)
        self._depth = 0
        self._in_bartext = False
        self.resources: list[str] = []  # what the page would load from elsewhere (nothing, for a self-contained page)
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag not in _VOID:
            self._depth += 1
        if tag == "script":
            self.scripts += 1
        if tag in ("script", "img", "iframe", "link", "source") and not (a.get("src") or a.get("href") or "data:").startswith("data:"):
            self.resources.append(a.get("src") or a.get("href"))
        if tag == "section":
            self._section = a.get("id")
            self.sections[self._section] = a.get("data-available")
            self.section_text[self._section] = ""
        if tag == "div" and (a.get("id") or "").startswith("chart-") and self._chart is None:
            self._chart = (a["id"], self._depth)
            self.bar_labels[a["id"]] = []
        if self._chart and tag == "g" and "trace" in (a.get("class") or "").split() and "bars" in (a.get("class") or "").split():
            self.bar_labels[self._chart[0]].append([])
        if self._chart and tag == "text" and "bartext" in (a.get("class") or ""):
            self._in_bartext = True
            self.bar_labels[self._chart[0]][-1].append("")
        if "data-metric" in a:
            key = (a["data-metric"], *(a.get(k) for k in KEYS))
            self._open.append((tag, key, [a.get("data-value")]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "text":
            self._in_bartext = False
        if self._open and self._open[-1][0] == tag:
            _, key, parts = self._open.pop()
            self.metrics[key] = (parts[0], "".join(parts[1:]).strip())
        if self._chart and tag == "div" and self._depth == self._chart[1]:
            self._chart = None
        if tag == "section":
            self._section = None
        if tag not in _VOID:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][2].append(data)
        if self._in_bartext and self._chart:
            self.bar_labels[self._chart[0]][-1][-1] += data
        if self._section:
            self.section_text[self._section] += data

    def value(self, metric: str, **keys: str) -> str | None:
        wanted = (metric, *(keys.get(k.removeprefix("data-")) for k in KEYS))
        return self.metrics[wanted][0]


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: the run-report browser test needs Debian's chromium (apt-get install -y chromium) in CI")
        pytest.skip("chromium is not installed (apt-get install -y chromium); this test fails instead when CI=true")
    return exe


def _rendered_dom(exe: str, page: Path, profile_dir: Path) -> str:
    """The DOM after the page's scripts ran, from headless Chromium."""
    out = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert out.returncode == 0 and out.stdout, f"chromium --dump-dom failed ({out.returncode}): {out.stderr[-2000:]}"
    return out.stdout


# --------------------------------------------------------------------------- a hand-made lakehouse

T0 = datetime(2026, 11, 1, 8, 0, 0)
SEGMENT_ROWS = "customer_uid string, segment string, entered_at timestamp, exited_at timestamp, entered_run_id string, exited_run_id string, run_id string"
METRICS_ROWS = (
    "run_id string, computed_at timestamp, customers long, largest_component_records long, components_over_alarm long, "
    "merges long, splits long, blocklisted long, size_histogram string"
)
MODEL_METRICS = {  # (task, kind) -> metrics logged for run r2
    ("churn", "logistic_regression"): {"roc_auc": 0.7712, "pr_auc": 0.5121, "log_loss": 0.52, "n": 300.0},
    ("churn", "gbt"): {"roc_auc": 0.8034, "pr_auc": 0.5533, "log_loss": 0.49, "n": 300.0},
    ("propensity", "logistic_regression"): {"roc_auc": 0.6901, "pr_auc": 0.3012, "log_loss": 0.41, "n": 300.0},
    ("propensity", "gbt"): {"roc_auc": 0.6555, "pr_auc": 0.2877, "log_loss": 0.44, "n": 300.0},
}


def _cfg(base: Path, *, segments: tuple[str, ...] = ("vip", "lapsed", "never_matched")):
    return parse_config(
        {"paths": {"lakehouse": "lake", "reports": "reports", "mlflow_tracking_uri": "sqlite:///mlflow/mlflow.db", "mlflow_artifacts": "mlart"},
         "engines": {"storage": "delta-rs"}, "gold": {"segments": [{"name": n, "condition": "true"} for n in segments]}},
        base_dir=base,
    )


def _log_row(run_id: str, stage: str, started: datetime, rows_in: int, rows_out: int, seconds: float = 3.25, status: str = "succeeded", error: str | None = None) -> tuple:
    return (run_id, stage, status, started, started + timedelta(seconds=seconds), seconds, rows_in, rows_out, error, "{}")


def _stay(uid: str, segment: str, run_id: str, exited: bool = False) -> tuple:
    return (uid, segment, T0, T0 + timedelta(days=1) if exited else None, run_id, run_id if exited else None, run_id)


def _log_models(spark, cfg, run_id: str) -> None:
    """MLflow runs as the train stage logs them (tags, params, metrics, plots/*.png) and a champion per task."""
    from mlflow import MlflowClient

    from cdp_spark.models.metrics import write_plots

    scored = spark.createDataFrame([(float(i % 3 == 0), (i % 10) / 10 + 0.05) for i in range(60)], "label double, p double")
    plots = write_plots(scored, Path(cfg.paths.reports).parent / "plots", title="fixture", importances={"recency_days": 0.6, "orders": 0.4})
    Path(cfg.paths.mlflow_tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    client = MlflowClient(tracking_uri=cfg.paths.mlflow_tracking_uri, registry_uri=cfg.paths.mlflow_tracking_uri)
    experiments = {name: client.create_experiment(name, artifact_location=f"{Path(cfg.paths.mlflow_artifacts).as_uri()}/{name}") for name in ("cdp-churn", "cdp-propensity", "cdp-clv")}
    for (task, kind), metrics in MODEL_METRICS.items():
        run = client.create_run(experiments[f"cdp-{task}"], run_name=f"{task}-{kind}-{run_id}", tags={"cdp.run_id": run_id})
        client.log_param(run.info.run_id, "model", kind)
        for key, value in metrics.items():
            client.log_metric(run.info.run_id, key, value)
        for png in plots:
            client.log_artifact(run.info.run_id, str(png), artifact_path="plots")
        client.set_terminated(run.info.run_id)
        if kind == "gbt":
            name = f"cdp_{task}"
            client.create_registered_model(name)
            version = client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
            client.set_registered_model_alias(name, "champion", version.version)
    clv = client.create_run(experiments["cdp-clv"], run_name=f"clv-{run_id}", tags={"cdp.run_id": run_id})
    client.log_metric(clv.info.run_id, "bgnbd_r", 0.243)
    client.set_terminated(clv.info.run_id)


@pytest.fixture(scope="module")
def handmade(spark, tmp_path_factory):
    """Two runs in a lakehouse written table by table: r1 (bronze, gold) then r2 (all stages, MLflow, Data Docs)."""
    from cdp_spark.quality.gate import RESULTS_SCHEMA

    cfg = _cfg(tmp_path_factory.mktemp("handmade"))
    lake = Lake(spark, cfg.paths.lakehouse, engine="delta-rs")
    r2 = T0 + timedelta(days=1)
    stages = [("bronze", 11011, 9121, 41.5), ("silver", 9121, 8450, 63.0), ("identity", 5120, 4987, 28.4), ("gold", 4987, 812, 35.1), ("train", 812, 640, 120.7), ("score", 812, 812, 14.2)]
    lake.append("ops", "run_log", spark.createDataFrame(
        [_log_row("r1", "bronze", T0, 100, 90), _log_row("r1", "gold", T0 + timedelta(minutes=5), 90, 80),
         _log_row("r2", "bronze", r2 - timedelta(hours=1), 1, 0, status="failed", error="StorageError: first attempt")]  # a rerun: latest attempt wins
        + [_log_row("r2", name, r2 + timedelta(minutes=i), n_in, n_out, secs) for i, (name, n_in, n_out, secs) in enumerate(stages)],
        RUN_LOG_SCHEMA,
    ))
    lake.append("ops", "quality_results", spark.createDataFrame(
        [("r2", "orders", "amount_not_null", "expect_column_values_to_not_be_null", "error", False, 7, 2000, None, r2),
         ("r2", "orders", "currency_known", "expect_column_values_to_be_in_set", "warn", True, 0, 2000, None, r2),
         ("r2", "customer_records", "dob_in_range", "expect_column_values_to_be_between", "warn", False, 3, 900, None, r2),
         ("r2", "customer_records", "record_id_unique", "expect_column_values_to_be_unique", "critical", True, 0, 900, None, r2),
         ("r1", "orders", "amount_not_null", "expect_column_values_to_not_be_null", "error", True, 0, 50, None, T0)],
        RESULTS_SCHEMA,
    ))
    docs = Path(cfg.paths.reports) / "data_docs" / "index.html"
    docs.parent.mkdir(parents=True)
    docs.write_text("<html>data docs</html>")
    lake.append("gold", "identity_metrics", spark.createDataFrame(
        [("r2", r2, 4987, 17, 0, 12, 3, 9, "{'1': 4100, '2': 600, '3-5': 250, '6-10': 30, '11-100': 7}")], METRICS_ROWS,
    ))
    lake.with_context(run_id="r1", stage="gold").append("gold", "segment_membership", spark.createDataFrame(
        [_stay("u1", "vip", "r1"), _stay("u2", "vip", "r1"), _stay("u3", "lapsed", "r1")], SEGMENT_ROWS,
    ))
    lake.with_context(run_id="r2", stage="gold").upsert("gold", "segment_membership", spark.createDataFrame(
        [_stay("u2", "vip", "r1", exited=True), _stay("u4", "vip", "r2"), _stay("u5", "vip", "r2"), _stay("u6", "lapsed", "r2"), _stay("u7", "retired_segment", "r2")],
        SEGMENT_ROWS,
    ), keys=["segment", "customer_uid", "entered_run_id"])
    _log_models(spark, cfg, "r2")
    return cfg


def _metrics_by(page: _Page, index: int) -> dict[tuple[str, str], str]:
    """(key at ``index`` of KEYS, metric) -> data-value for the cells carrying that key."""
    return {(k[1 + index], k[0]): v[0] for k, v in page.metrics.items() if k[1 + index] is not None}


def test_report_holds_the_figures_of_the_run(spark, handmade):
    path = build_run_report(spark, handmade)  # latest run by default: r2
    assert path == Path(handmade.paths.reports) / "run_r2.html"
    text = path.read_text()
    page = _parse(text)

    assert _metrics_by(page, 0) == {
        **{(s, "status"): "succeeded" for s in ("bronze", "silver", "identity", "gold", "train", "score")},
        ("bronze", "rows_in"): "11011", ("bronze", "rows_out"): "9121", ("bronze", "seconds"): "41.5", ("bronze", "attempts"): "2",
        ("silver", "rows_in"): "9121", ("silver", "rows_out"): "8450", ("silver", "seconds"): "63.0", ("silver", "attempts"): "1",
        ("identity", "rows_in"): "5120", ("identity", "rows_out"): "4987", ("identity", "seconds"): "28.4", ("identity", "attempts"): "1",
        ("gold", "rows_in"): "4987", ("gold", "rows_out"): "812", ("gold", "seconds"): "35.1", ("gold", "attempts"): "1",
        ("train", "rows_in"): "812", ("train", "rows_out"): "640", ("train", "seconds"): "120.7", ("train", "attempts"): "1",
        ("score", "rows_in"): "812", ("score", "rows_out"): "812", ("score", "seconds"): "14.2", ("score", "attempts"): "1",
    }
    assert page.metrics[("rows_in", "bronze", None, None, None, None, None)] == ("11011", "11,011")
    assert page.value("expectations") == "4" and page.value("passed") == "2" and page.value("failed") == "2"
    assert _metrics_by(page, 1) == {
        ("orders", "expectations"): "2", ("orders", "passed"): "1", ("orders", "failed_error"): "1", ("orders", "failed_warn"): "0",
        ("customer_records", "expectations"): "2", ("customer_records", "passed"): "1",
        ("customer_records", "failed_error"): "0", ("customer_records", "failed_warn"): "1",
    }
    assert 'id="data-docs-link" href="data_docs/index.html"' in text
    assert [page.value(m) for m in ("customers", "largest_component_records", "components_over_alarm", "merges", "splits", "blocklisted")] == ["4987", "17", "0", "12", "3", "9"]
    assert _metrics_by(page, 2) == {("1", "customers"): "4100", ("2", "customers"): "600", ("3-5", "customers"): "250", ("6-10", "customers"): "30", ("11-100", "customers"): "7"}
    assert _metrics_by(page, 3) == {("vip", "members"): "3", ("lapsed", "members"): "2", ("never_matched", "members"): "0", ("retired_segment", "members"): "1"}
    for (task, kind), metrics in MODEL_METRICS.items():
        assert float(page.value("roc_auc", task=task, model=kind)) == metrics["roc_auc"]
        assert float(page.value("pr_auc", task=task, model=kind)) == metrics["pr_auc"]
        assert page.value("n", task=task, model=kind) == "300"
    assert page.value("champion_version", task="churn") == "1" and page.value("champion_version", task="propensity") == "1"
    assert page.value("bgnbd_r", task="clv") == "0.243"
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', text)) == 4 * 5  # roc, pr, calibration, lift, importance per classifier run
    assert set(page.sections.values()) == {"true"}
    assert page.resources == [] and page.scripts == 1 + 5  # self-contained: plotly.js inline once, one script per chart


def test_report_of_an_older_run_shows_that_runs_segments_and_what_it_lacks(spark, handmade):
    page = _parse(build_run_report(spark, handmade, "r1").read_text())

    assert _metrics_by(page, 0) == {
        ("bronze", "status"): "succeeded", ("bronze", "rows_in"): "100", ("bronze", "rows_out"): "90", ("bronze", "seconds"): "3.2", ("bronze", "attempts"): "1",
        ("gold", "status"): "succeeded", ("gold", "rows_in"): "90", ("gold", "rows_out"): "80", ("gold", "seconds"): "3.2", ("gold", "attempts"): "1",
    }
    assert _metrics_by(page, 3) == {("vip", "members"): "2", ("lapsed", "members"): "1", ("never_matched", "members"): "0"}  # table version r1 wrote
    assert page.value("expectations") == "1" and page.value("failed") == "0"
    assert page.sections == {"stages": "true", "quality": "true", "identity": "false", "segments": "true", "models": "false"}
    assert "not available for this run (gold.identity_metrics has no row for run r1)" in page.section_text["identity"]
    assert "not available for this run (MLflow has no run tagged cdp.run_id=r1)" in page.section_text["models"]


def test_report_says_not_available_for_each_missing_table(spark, tmp_path):
    cfg = _cfg(tmp_path)
    Lake(spark, cfg.paths.lakehouse, engine="delta-rs").append("ops", "run_log", spark.createDataFrame(
        [_log_row("r9", "bronze", T0, 10, 0, status="failed", error="StorageError: <disk full>")], RUN_LOG_SCHEMA,
    ))
    text = build_run_report(spark, cfg, "r9").read_text()
    page = _parse(text)

    assert page.sections == {"stages": "true", "quality": "false", "identity": "false", "segments": "false", "models": "false"}
    assert page.value("status", stage="bronze") == "failed"
    assert "StorageError: &lt;disk full&gt;" in text  # errors are escaped, not injected
    assert 'id="run-status" data-value="failed"' in text
    for section, reason in {
        "quality": "ops.quality_results does not exist",
        "identity": "gold.identity_metrics does not exist",
        "segments": "gold.segment_membership does not exist",
        "models": "no MLflow tracking store at",
    }.items():
        assert "not available for this run" in page.section_text[section] and reason in page.section_text[section]


def test_report_for_no_run_or_an_unsafe_run_id_is_refused(spark, tmp_path):
    cfg = _cfg(tmp_path)
    with pytest.raises(CdpError, match="no runs recorded in ops.run_log"):
        build_run_report(spark, cfg)
    with pytest.raises(CdpError, match="cannot name a report file"):
        build_run_report(spark, cfg, "../etc/passwd")


# --------------------------------------------------------------------------- in a browser


def _check_rendered_stage_figures(spark, cfg, run_id: str, page: _Page) -> dict:
    """The stage table and the drawn rows chart show exactly ops.run_log's latest attempt per stage."""
    rows = Lake(spark, cfg.paths.lakehouse, engine=cfg.engines.storage).read("ops", "run_log").where(F.col("run_id") == run_id).orderBy("started_at").collect()
    log = {r["stage"]: r for r in rows}  # later attempts overwrite earlier ones
    ordered = sorted(log, key=lambda s: log[s]["started_at"])
    for stage, r in log.items():
        assert page.value("status", stage=stage) == r["status"]
        assert page.value("rows_in", stage=stage) == str(r["rows_in"])
        assert page.value("rows_out", stage=stage) == str(r["rows_out"])
        assert page.value("seconds", stage=stage) == str(round(r["seconds"], 1))
    # plotly drew the bars (the page's scripts ran): trace 0 rows in, trace 1 rows out, in stage order
    assert page.bar_labels["chart-stage-rows"] == [[f"{log[s]['rows_in']:,}" for s in ordered], [f"{log[s]['rows_out']:,}" for s in ordered]]
    assert page.bar_labels["chart-stage-seconds"] == [[f"{round(log[s]['seconds'], 1):,.1f}" for s in ordered]]
    return log


def test_rendered_report_shows_the_run_log_figures(spark, handmade, tmp_path):
    exe = _chromium()
    path = build_run_report(spark, handmade, "r2")
    page = _parse(_rendered_dom(exe, path, tmp_path / "chromium"))

    _check_rendered_stage_figures(spark, handmade, "r2", page)
    assert page.bar_labels["chart-identity-histogram"] == [["4,100", "600", "250", "30", "7"]]
    assert page.bar_labels["chart-segments"] == [["3", "2", "0", "1"]]
    assert page.bar_labels["chart-models"] == [["0.771", "0.803", "0.690", "0.655"], ["0.512", "0.553", "0.301", "0.288"]]


def test_rendered_report_shows_the_figures_of_the_demo_run(spark, demo_run, tmp_path):
    exe = _chromium()
    cfg, _, results = demo_run
    assert [r.status for r in results] == ["succeeded"] * len(results), [r.line() for r in results]
    path = build_run_report(spark, cfg, "demo-run")
    page = _parse(_rendered_dom(exe, path, tmp_path / "chromium"))

    log = _check_rendered_stage_figures(spark, cfg, "demo-run", page)
    assert set(log) == {r.stage for r in results}
    lake = Lake(spark, cfg.paths.lakehouse, engine=cfg.engines.storage)
    details = {stage: json.loads(r["details_json"] or "{}") for stage, r in log.items()}
    identity = details["identity"]
    assert page.value("customers") == str(identity["customers"])
    assert page.value("customers") == str(lake.read("gold", "identity_map").select("customer_uid").distinct().count())
    assert page.value("largest_component_records") == str(identity["largest_component_records"])
    assert {k[3]: int(v[0]) for k, v in page.metrics.items() if k[3] is not None} == identity["size_histogram"]
    assert {k[4]: int(v[0]) for k, v in page.metrics.items() if k[0] == "members"} == details["gold"]["segment_sizes"]
    quality = lake.read("ops", "quality_results").where(F.col("run_id") == "demo-run")
    assert page.value("expectations") == str(quality.count())
    assert page.value("failed") == str(quality.where(~F.col("success")).count())
    for task, trained in details["train"]["models"].items():
        if task != "clv":
            assert round(float(page.value("roc_auc", task=task, model=trained["kind"])), 4) == trained["roc_auc"]
            assert round(float(page.value("pr_auc", task=task, model=trained["kind"])), 4) == trained["pr_auc"]
            assert page.value("champion_version", task=task) == trained["champion_version"]
    assert set(page.sections.values()) == {"true"}
