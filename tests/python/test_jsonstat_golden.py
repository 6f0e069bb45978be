#!/usr/bin/env python3
"""Reads the JSON-stat golden files of kpr-statistics with an independent reader.

The golden files services/statistics/testdata/{t2,i1}.{json,csv} are written by the
Rust renderers (services/statistics/src/format.rs, refreshed with UPDATE_EXPECT=1).
This test knows them only through JSON-stat 2.0, CSV and SPEC 6/8:

* pyjstat (pyjstat.pyjstat.Dataset.read(text).write('dataframe')) turns each
  dataset into one row per cell, in the order JSON-stat defines (row-major, the last
  dimension fastest, category order by index position);
* every cell marked suppressed in `status` (":") must come out without a value;
* the CSV golden file, read with the csv module, must agree with the dataframe on
  every cell (`:` suppressed, empty undefined, else the same number), with two values
  also checked by hand through the category labels.

Run with the stdlib runner only:  python tests/python/test_jsonstat_golden.py
(scripts/python-client-test.sh sets up the virtualenv and does that.)
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import unittest
import warnings
from pathlib import Path

import pandas as pd
from pyjstat import pyjstat

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = REPO_ROOT / "services" / "statistics" / "testdata"
EXACT_SUFFIX = " (eksakte tall, ikke skjermet)"


def missing(value) -> bool:
    """Whether a dataframe value is absent (None, NaN or pandas NA)."""
    return value is None or bool(pd.isna(value))


class Golden:
    """One golden dataset: the raw JSON, pyjstat's dataframes and the CSV rows."""

    def __init__(self, name: str):
        self.name = name
        text = (GOLDEN_DIR / f"{name}.json").read_text(encoding="utf-8")
        self.raw = json.loads(text)
        with warnings.catch_warnings():
            # pyjstat 2.0.0's own write() calls its deprecated from_json_stat().
            warnings.filterwarnings(
                "ignore", message="Shouldn't use this function", category=DeprecationWarning
            )
            self.by_label = pyjstat.Dataset.read(text).write("dataframe")
            self.by_id = pyjstat.Dataset.read(text).write("dataframe", naming="id")
        csv_text = (GOLDEN_DIR / f"{name}.csv").read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(csv_text, newline="")))
        self.csv_header, self.csv_rows = rows[0], rows[1:]

    @property
    def ids(self) -> list[str]:
        return self.raw["id"]

    @property
    def cells(self) -> int:
        return math.prod(self.raw["size"])

    def codes(self, dim: str) -> list[str]:
        return self.raw["dimension"][dim]["category"]["index"]

    def label(self, dim: str, code: str) -> str:
        return self.raw["dimension"][dim]["category"]["label"][code]

    def suppressed(self) -> set[int]:
        return {int(k) for k in self.raw["status"]}

    def offset(self, codes: list[str]) -> int:
        """Position in `value` of one category code per dimension (row-major)."""
        offset = 0
        for dim, size, code in zip(self.ids, self.raw["size"], codes):
            offset = offset * size + self.codes(dim).index(code)
        return offset


class JsonStatGoldenTest(unittest.TestCase):
    def check_common(self, g: Golden):
        # One dataframe row per cell, with one column per dimension and the value.
        self.assertEqual(len(g.raw["value"]), g.cells)
        self.assertEqual(len(g.by_id), g.cells)
        self.assertEqual(len(g.by_label), g.cells)
        self.assertEqual(list(g.by_id.columns), g.ids + ["value"])
        labels = [g.raw["dimension"][d]["label"] for d in g.ids]
        self.assertEqual(list(g.by_label.columns), labels + ["value"])

        # Row i of the dataframe is cell i: its codes are the row-major coordinates of i.
        for i, row in enumerate(g.by_id.itertuples(index=False)):
            codes = [str(c) for c in row[:-1]]
            self.assertEqual(g.offset(codes), i, f"{g.name}: row {i} {codes}")

        # Suppressed cells carry ':' and have no value.
        for key, mark in g.raw["status"].items():
            self.assertEqual(mark, ":", f"{g.name}: status {key}")
        for i in g.suppressed():
            self.assertTrue(missing(g.by_id["value"].iloc[i]), f"{g.name}: cell {i}")
            self.assertTrue(missing(g.by_label["value"].iloc[i]), f"{g.name}: cell {i}")

        # Every CSV cell agrees with the dataframe.
        measure_dim = g.ids[-1]
        measures = g.codes(measure_dim)
        self.assertEqual(g.csv_header, g.ids[:-1] + measures)
        self.assertEqual(len(g.csv_rows) * len(measures), g.cells)
        by_codes = {
            tuple(str(c) for c in row[:-1]): row[-1]
            for row in g.by_id.itertuples(index=False)
        }
        compared = 0
        for row in g.csv_rows:
            dims, fields = row[: len(g.ids) - 1], row[len(g.ids) - 1 :]
            self.assertEqual(len(fields), len(measures), f"{g.name}: {row}")
            for code, field in zip(measures, fields):
                key = tuple(dims) + (code,)
                value = by_codes[key]
                offset = g.offset(list(key))
                if field == ":":
                    self.assertIn(offset, g.suppressed(), f"{g.name}: {key}")
                    self.assertTrue(missing(value), f"{g.name}: {key}")
                elif field == "":
                    self.assertNotIn(offset, g.suppressed(), f"{g.name}: {key}")
                    self.assertTrue(missing(value), f"{g.name}: {key}")
                else:
                    self.assertNotIn(offset, g.suppressed(), f"{g.name}: {key}")
                    self.assertEqual(float(field), float(value), f"{g.name}: {key}")
                    compared += 1
        self.assertGreater(compared, 0)

        # Reproducibility facts (SPEC 7).
        extension = g.raw["extension"]
        self.assertIsInstance(extension["definition_version"], int)
        self.assertTrue(extension["log_position"])
        for position in extension["log_position"]:
            self.assertEqual(set(position), {"partition", "records"})

    def spot_check(self, g: Golden, codes: list[str], expected: float):
        """One cell by hand: through the labels dataframe and through the CSV file."""
        labels = {
            g.raw["dimension"][d]["label"]: g.label(d, c) for d, c in zip(g.ids, codes)
        }
        frame = g.by_label
        mask = pd.Series(True, index=frame.index)
        for column, label in labels.items():
            mask &= frame[column] == label
        values = frame.loc[mask, "value"].tolist()
        self.assertEqual(len(values), 1, f"{g.name}: {labels}")
        self.assertEqual(float(values[0]), expected)

        column = g.csv_header.index(codes[-1])
        rows = [r for r in g.csv_rows if r[: len(codes) - 1] == codes[:-1]]
        self.assertEqual(len(rows), 1, f"{g.name}: {codes}")
        self.assertEqual(float(rows[0][column]), expected)

    def test_t2_recipients_exact(self):
        g = Golden("t2")
        self.check_common(g)
        self.assertTrue(g.raw["label"].endswith(EXACT_SUFFIX))
        self.assertTrue(g.raw["extension"]["exact"])
        self.assertEqual(g.raw["status"], {})
        self.assertFalse(g.by_id["value"].isna().any(), "an exact table hides nothing")
        self.assertEqual(g.ids, ["Region", "Tjeneste", "Alder", "Kjonn", "ContentsCode"])
        # Oslo, home nursing (15), 80-89, women; long-term stay (21), all ages, both sexes.
        self.spot_check(g, ["0301", "15", "080-089", "2", "Personer"], 880)
        self.spot_check(g, ["0301", "21", "999", "0", "Personer"], 1889)

    def test_i1_long_term_80_plus_protected(self):
        g = Golden("i1")
        self.check_common(g)
        self.assertFalse(g.raw["label"].endswith(EXACT_SUFFIX))
        self.assertFalse(g.raw["extension"]["exact"])
        self.assertTrue(g.suppressed(), "the I1 golden file has suppressed cells")
        self.assertEqual(g.codes("ContentsCode"), ["Personer", "Befolkning", "Andel"])
        # An undefined share (0/0) is null without being suppressed.
        undefined = [
            i for i, v in enumerate(g.raw["value"]) if v is None and i not in g.suppressed()
        ]
        self.assertTrue(undefined)
        # Oslo women: the share; Utsira both sexes: the population 80+.
        self.spot_check(g, ["0301", "2", "2024", "Andel"], 1480 / 17380)
        self.spot_check(g, ["1151", "0", "2024", "Befolkning"], 29)


class ServedGoldenTest(unittest.TestCase):
    """Tables as the register served them (tests/e2e/golden.rs writes served_*)."""

    def test_served_tables_read_with_pyjstat(self):
        names = sorted(p.stem for p in GOLDEN_DIR.glob("served_*.json"))
        self.assertGreaterEqual(len(names), 4, "the served golden files are missing")
        for name in names:
            with self.subTest(name=name):
                g = Golden(name)
                JsonStatGoldenTest.check_common(self, g)
                self.assertFalse(g.raw["extension"]["exact"], f"{name} is a public table")
                self.assertEqual(g.ids[0], "Region")
                self.assertIn("Tid", g.ids)


def main() -> int:
    program = unittest.main(module=__name__, exit=False, verbosity=2)
    result = program.result
    ok = result.wasSuccessful() and result.testsRun > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
