"""Ground truth: linkable groups by connected components, and per-person true outcome probabilities."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cdp_spark.synthetic._sources import SourceData
from cdp_spark.synthetic._world import DAY, World, rng_for


def linkable_groups(sources: list[SourceData]) -> list[np.ndarray]:
    """Per source, the linkable group of each truth record.

    Nodes are records and identity keys ``(kind, person, entity)``; an edge joins a record to each
    key it carries. Keys include the person, so a component never spans two people; junk values
    carry no key, so they link nothing.
    """
    sizes = [len(s.record_person) for s in sources]
    offsets = np.r_[0, np.cumsum(sizes)]
    rec_parts, key_parts = [], []
    for s, off in zip(sources, offsets[:-1]):
        for key in s.keys:
            has = np.flatnonzero(key >= 0)
            rec_parts.append(off + has)
            key_parts.append(key[has])
    rec = np.concatenate(rec_parts) if rec_parts else np.zeros(0, np.int64)
    keys = np.concatenate(key_parts) if key_parts else np.zeros(0, np.int64)
    _, key_node = np.unique(keys, return_inverse=True)
    n_rec = int(offsets[-1])
    n_nodes = n_rec + (int(key_node.max()) + 1 if len(key_node) else 0)
    graph = coo_matrix((np.ones(len(rec), dtype=np.int8), (rec, n_rec + key_node)), shape=(n_nodes, n_nodes)).tocsr()
    _, labels = connected_components(graph, directed=False)
    record_labels = labels[:n_rec].astype(np.int64)
    return [record_labels[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def people_table(world: World, horizon_days: int, seed: int) -> pa.Table:
    """Latent parameters and true outcomes in the window [end, end + horizon_days) per person.

    Alive at the end, the next purchase comes after Exp(lambda) days (dropout only follows a
    purchase), so P(purchase in window) = 1 - exp(-lambda * H) and E[purchases] = (1 - exp(-lambda p H)) / p.
    ``purchased_in_window`` is one draw of that future with the seed.
    """
    alive = world.alive_at_end()
    lam, p, h = world.lambda_, world.p_dropout, float(horizon_days)
    p_purchase = np.where(alive, 1.0 - np.exp(-lam * h), 0.0)
    expected = np.where(alive, (1.0 - np.exp(-lam * p * h)) / p, 0.0)
    realised = alive & (rng_for(seed, 40).exponential(1.0 / lam) < h)
    n_purchases = np.bincount(world.purchase_person, minlength=world.n)
    codes = pa.array([s.code for s in world.specs], type=pa.string())
    window_start = np.full(world.n, world.t_end // DAY, dtype=np.int32)
    return pa.table({
        "person_id": pa.array(np.arange(world.n, dtype=np.int64)),
        "country": codes.take(pa.array(world.country)),
        "household_id": pa.array(world.household),
        "first_name": world.first_name(np.arange(world.n)),
        "last_name": world.last_name(np.arange(world.n)),
        "lambda_": pa.array(lam),
        "p_dropout": pa.array(p),
        "spend_scale": pa.array(world.spend_scale),
        "pref_web": pa.array(world.channel_pref[:, 0]),
        "pref_app": pa.array(world.channel_pref[:, 1]),
        "pref_store": pa.array(world.channel_pref[:, 2]),
        "responsiveness": pa.array(world.responsiveness),
        "acquired_at": pa.array(world.acquired_ts.astype("datetime64[s]")).cast(pa.timestamp("us", tz="UTC")),
        "n_purchases": pa.array(n_purchases.astype(np.int64)),
        "alive_at_end": pa.array(alive),
        "true_p_churn": pa.array(1.0 - p_purchase),
        "true_p_purchase": pa.array(p_purchase),
        "true_expected_purchases": pa.array(expected),
        "purchased_in_window": pa.array(realised),
        "window_start": pa.array(window_start, type=pa.int32()).cast(pa.date32()),
        "window_days": pa.array(np.full(world.n, horizon_days, dtype=np.int32)),
    })
