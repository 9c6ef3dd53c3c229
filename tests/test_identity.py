"""Identity graph, over-merge defence and persistent customer IDs."""

from datetime import datetime

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdp_spark.config import IdentityConfig
from cdp_spark.identity import connected_components
from cdp_spark.identity.graph import blocklist, build_edges, record_components
from cdp_spark.identity.resolve import REGISTRY_SCHEMA, assign_customer_uids, updated_registry

T0 = datetime(2025, 1, 1)
ID_SCHEMA = "source string, record_id string, id_type string, id_key string, anonymous boolean, seen_at timestamp"


def ids(spark, rows):
    return spark.createDataFrame([(s, r, t, k, t in ("cookie_id", "device_id"), T0) for s, r, t, k in rows], ID_SCHEMA)


def resolve(spark, identifiers, cfg=IdentityConfig()):
    blocked = blocklist(identifiers, cfg)
    edges = build_edges(identifiers, blocked)
    comps = connected_components(edges.select("src", "dst"), engine="native")
    return record_components(identifiers, blocked, comps), blocked


def test_records_sharing_an_email_or_device_chain_into_one_customer(spark):
    identifiers = ids(spark, [
        ("crm", "1", "customer_id", "c1"), ("crm", "1", "email", "e1"),
        ("orders", "o1", "email", "e1"), ("orders", "o1", "device_id", "d1"),
        ("app", "a1", "device_id", "d1"), ("app", "a1", "customer_id", "c1"),
        ("web", "w1", "cookie_id", "k9"),
    ])
    rc, _ = resolve(spark, identifiers)
    got = rc.groupBy("component").agg(F.sort_array(F.collect_list(F.concat_ws(":", "source", "record_id"))).alias("records")).select("records")
    assertDataFrameEqual(got, spark.createDataFrame([(["app:a1", "crm:1", "orders:o1"],), (["web:w1"],)], "records array<string>"))


def test_junk_email_shared_by_1000_people_merges_none_of_them(spark):
    rows = []
    for i in range(1000):
        rows += [("crm", f"r{i}", "customer_id", f"c{i}"), ("crm", f"r{i}", "email", "test@test.com"), ("crm", f"r{i}", "phone", f"p{i}")]
    identifiers = ids(spark, rows)
    rc, blocked = resolve(spark, identifiers)
    assert rc.select("component").distinct().count() == 1000
    assert rc.count() == 1000
    assert [r["node"] for r in blocked.collect()] == ["email:test@test.com"]


def test_family_tablet_over_the_device_cap_is_blocklisted(spark):
    cfg = IdentityConfig(per_type_caps={"device_id": 2})
    rows = []
    for i in range(3):
        rows += [("app", f"a{i}", "customer_id", f"c{i}"), ("app", f"a{i}", "device_id", "tablet")]
    rc, blocked = resolve(spark, ids(spark, rows), cfg)
    assert rc.select("component").distinct().count() == 3
    assert blocked.select("node", "customers").collect()[0].asDict() == {"node": "device_id:tablet", "customers": 3}


def test_blocklist_counts_distinct_customers_and_records_of_a_shared_identifier(spark):
    rows = [
        ("crm", "r1", "customer_id", "c1"), ("crm", "r1", "phone", "p"),
        ("orders", "o1", "customer_id", "c1"), ("orders", "o1", "phone", "p"),  # c1 again: one customer, two records
        ("orders", "o2", "customer_id", "c2"), ("orders", "o2", "phone", "p"),
        ("tickets", "t1", "phone", "p"),  # a record without an account
        ("tickets", "t2", "phone", "q"),
    ]
    blocked = blocklist(ids(spark, rows), IdentityConfig(per_type_caps={"phone": 1}))
    assertDataFrameEqual(
        blocked,
        spark.createDataFrame([("phone:p", "phone", "shared by 2 customers on 4 records", 2, 4)], "node string, id_type string, reason string, customers long, records long"),
    )


def test_record_with_only_blocklisted_identifiers_keeps_its_own_node(spark):
    rows = [("mkt", f"m{i}", "email", "test@test.com") for i in range(3)] + [("crm", f"r{i}", "customer_id", f"c{i}") for i in range(3)]
    rows += [("crm", f"r{i}", "email", "test@test.com") for i in range(3)]
    rc, _ = resolve(spark, ids(spark, rows), IdentityConfig(per_type_caps={"email": 1}))
    mkt = rc.where("source = 'mkt'").select("record_id", "node").orderBy("record_id").collect()
    assert [(r["record_id"], r["node"]) for r in mkt] == [(f"m{i}", f"record:mkt:m{i}") for i in range(3)]


def test_edges_are_a_star_per_record_not_a_clique(spark):
    identifiers = ids(spark, [("crm", "1", t, f"k{t}") for t in ("customer_id", "email", "phone", "loyalty_id", "device_id")])
    edges = build_edges(identifiers, blocklist(identifiers, IdentityConfig()))
    got = edges.select("src", "dst", "rule").orderBy("dst").collect()
    assert len(got) == 4  # k-1 edges for k identifiers
    assert all("customer_id:kcustomer_id" in (r["src"], r["dst"]) for r in got)


# ----------------------------------------------------------------------------- persistent IDs


def registry(spark, rows):
    return spark.createDataFrame(
        [(uid, "active", None, None, created, "run0", "run0") for uid, created in rows], REGISTRY_SCHEMA
    )


def test_unchanged_components_keep_their_ids_and_new_ones_get_deterministic_ids(spark):
    comps = spark.createDataFrame([("a", "a"), ("b", "a"), ("x", "x")], "node string, component string")
    previous = spark.createDataFrame([("a", "U1"), ("b", "U1")], "node string, customer_uid string")
    reg = registry(spark, [("U1", T0)])
    assignment, merges, splits = assign_customer_uids(comps, previous, reg, mint_salt="v0")
    got = {r["component"]: (r["customer_uid"], r["is_new"]) for r in assignment.collect()}
    assert got["a"] == ("U1", False)
    assert got["x"][1] is True and got["x"][0].startswith("cu_")
    again, _, _ = assign_customer_uids(comps, previous, reg, mint_salt="v0")
    assert {r["component"]: r["customer_uid"] for r in again.collect()}["x"] == got["x"][0]
    assert merges.count() == 0 and splits.count() == 0


def test_merge_keeps_the_oldest_id_and_records_the_other(spark):
    comps = spark.createDataFrame([("a", "a"), ("b", "a")], "node string, component string")
    previous = spark.createDataFrame([("a", "NEWER"), ("b", "OLDER")], "node string, customer_uid string")
    reg = registry(spark, [("NEWER", datetime(2025, 6, 1)), ("OLDER", datetime(2025, 1, 1))])
    assignment, merges, _ = assign_customer_uids(comps, previous, reg, mint_salt="v1")
    assert [r["customer_uid"] for r in assignment.collect()] == ["OLDER"]
    assertDataFrameEqual(merges, spark.createDataFrame([("NEWER", "OLDER")], "customer_uid string, merged_into string"))
    new_reg = updated_registry(reg, assignment, merges, run_id="run1", now=datetime(2025, 7, 1))
    got = {r["customer_uid"]: (r["status"], r["merged_into"]) for r in new_reg.collect()}
    assert got == {"NEWER": ("merged", "OLDER"), "OLDER": ("active", None)}


def test_split_leaves_the_id_with_the_largest_part(spark):
    comps = spark.createDataFrame([("a", "a"), ("b", "a"), ("c", "c")], "node string, component string")
    previous = spark.createDataFrame([("a", "U1"), ("b", "U1"), ("c", "U1")], "node string, customer_uid string")
    assignment, _, splits = assign_customer_uids(comps, previous, registry(spark, [("U1", T0)]), mint_salt="v1")
    got = {r["component"]: r["customer_uid"] for r in assignment.collect()}
    assert got["a"] == "U1" and got["c"] != "U1"
    assert [(r["customer_uid"], r["split_from"]) for r in splits.collect()] == [(got["c"], "U1")]


def test_household_phone_chaining_two_accounts_is_pruned_but_shared_email_duplicates_stay(spark):
    from cdp_spark.identity.graph import prune_weak_links

    identifiers = ids(spark, [
        # person A: account a, email ea; orders with the household landline L
        ("crm", "a", "customer_id", "a"), ("crm", "a", "email", "ea"), ("orders", "oa", "customer_id", "a"), ("orders", "oa", "phone", "L"),
        # person B: support ticket with email eb and the same landline; consent links eb to account b
        ("support", "tb", "email", "eb"), ("support", "tb", "phone", "L"), ("consents", "cb", "customer_id", "b"), ("consents", "cb", "email", "eb"),
        # person C: two accounts (a duplicate) sharing one email: one person
        ("crm", "c1", "customer_id", "c1"), ("crm", "c1", "email", "ec"), ("crm", "c2", "customer_id", "c2"), ("crm", "c2", "email", "ec"),
    ])
    cfg = IdentityConfig()
    blocked = blocklist(identifiers, cfg)
    edges = build_edges(identifiers, blocked)
    cc = lambda e: connected_components(e, engine="native")  # noqa: E731
    comps, suspects = prune_weak_links(edges, cc(edges.select("src", "dst")), cc)
    rc = record_components(identifiers, blocked, comps)
    got = rc.groupBy("component").agg(F.sort_array(F.collect_list("record_id")).alias("r")).select("r")
    assertDataFrameEqual(got, spark.createDataFrame([(["a", "oa"],), (["cb", "tb"],), (["c1", "c2"],)], "r array<string>"))
    assert suspects.count() == 2  # the household chain and the duplicate accounts were both re-checked
