#!/usr/bin/env python3
"""Writes buckets.json: Flipper percentage-of-actors decisions computed independently of the
Rust code, with zlib's crc32 and Ruby's comparison rules (a percentage whose text contains '.'
is compared as a float, any other as an integer). Run: python3 tests/data/buckets.py"""
import json, os, zlib

def expected(feature, actor, pct_text):
    bucket = zlib.crc32((feature + actor).encode("utf-8")) % 100000
    pct = float(pct_text) if "." in pct_text else int(pct_text)
    return bucket, pct > 0 and (pct >= 100 or bucket < pct * 1000)

cases = [
    ("avs_enabled", "User;1", "10"), ("avs_enabled", "User;1", "46.802"), ("avs_enabled", "User;1", "46.803"),
    ("avs_enabled", "User;15", "10"), ("avs_enabled", "User;15", "4.246"), ("avs_enabled", "User;15", "4.247"),
    ("avs_enabled", "User;42", "10"), ("avs_enabled", "User;42", "13"),
    ("avs_enabled", "vets.gov.user+1@gmail.com", "10"), ("avs_enabled", "vets.gov.user+1@gmail.com", "50"),
    ("avs_enabled", "User;19008", "2.007"), ("avs_enabled", "User;19008", "2"), ("avs_enabled", "User;19008", "2.0069"),
    ("avs_enabled", "User;19008", "0"), ("avs_enabled", "User;19008", "0.0"), ("avs_enabled", "User;1", "100"),
    ("avs_enabled", "User;1", "100.0"), ("avs_enabled", "User;1", "99.999"),
    ("avs_enabled", "tester@example.com", "10"), ("avs_enabled", "tester@example.com", "33.333"),
    ("avs_enabled", "first.last@example.org", "50"), ("avs_enabled", "a@b.c", "1"),
    ("avs_enabled", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "10"),
    ("avs_enabled", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "75.5"),
    ("avs_enabled", "c56a4180-65aa-42ec-a945-5fd21dec0538", "25"),
    ("avs_enabled", "c56a4180-65aa-42ec-a945-5fd21dec0538", "12.345"),
    ("va_online_scheduling_after_visit_summary", "User;1", "10"),
    ("va_online_scheduling_after_visit_summary", "User;15", "50"),
    ("va_online_scheduling_after_visit_summary", "tester@example.com", "0.5"),
    ("va_online_scheduling_after_visit_summary", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "90"),
    ("feature_x", "User;7", "7"), ("feature_x", "User;8", "7.25"), ("feature_x", "", "50"),
    ("avs_enabled", "ünïcødé@example.com", "50"),
]
rows = []
for feature, actor, pct in cases:
    bucket, on = expected(feature, actor, pct)
    rows.append({"feature": feature, "actor": actor, "percentage": pct, "bucket": bucket, "enabled": on})
with open(os.path.join(os.path.dirname(__file__), "buckets.json"), "w", encoding="utf-8") as f:
    json.dump(rows, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(len(rows), "rows;", sum(r["enabled"] for r in rows), "enabled")
