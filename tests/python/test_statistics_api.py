"""The statistics API read the way a statistician reads Statistics Norway's: with pyjstat
(an independent JSON-stat reader) and pandas, against the real `kpr serve` fed the demo
population through `kpr demo`.

- One call for I3, every municipality and the years 2020-2025, becomes one DataFrame whose
  regions carry their names (Oslo, Bergen) and whose cells all reflect one log position.
- The metadata of every table, read by pyjstat, has the codes the data answers use.
- The CSV of the same view reads into pandas with the same numbers.

Run by scripts/python-client-test.sh (KPR_BIN is the binary under test).
"""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
from pyjstat import pyjstat

KPR_BIN = Path(os.environ.get("KPR_BIN", "target/debug/kpr"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str):
    # A public answer of a year waits for that year's whole frame to be protected as
    # linked tables (once per model generation); an answer over six years waits for six
    # of them, which a debug build takes minutes over.
    with urllib.request.urlopen(url, timeout=900) as r:
        return r.read().decode("utf-8"), dict(r.headers)


class StatisticsApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        data = Path(cls.tmp.name) / "data"
        grpc_addr = f"127.0.0.1:{free_port()}"
        stats_addr = f"127.0.0.1:{free_port()}"
        cls.base = f"http://{stats_addr}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KPR_")}
        cls.log = open(Path(cls.tmp.name) / "server.log", "w+b")
        cls.server = subprocess.Popen(
            [str(KPR_BIN), "serve", "--data", str(data), "--addr", grpc_addr,
             "--stats-addr", stats_addr, "--admin-addr", f"127.0.0.1:{free_port()}",
             "--allow-synthetic-ids"],
            stdout=subprocess.DEVNULL, stderr=cls.log, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                fetch(cls.base + "/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if cls.server.poll() is not None or time.monotonic() > deadline:
                    cls.log.seek(0)
                    raise RuntimeError("kpr serve did not start: " + cls.log.read().decode())
                time.sleep(0.1)
        demo = subprocess.run(
            [str(KPR_BIN), "demo", "--endpoint", f"http://{grpc_addr}", "--issuer-data", str(data),
             "--persons", "800", "--seed", "4"],
            capture_output=True, text=True, env=env, timeout=300)
        if demo.returncode != 0:
            raise RuntimeError("kpr demo failed: " + demo.stderr)
        stored = int(demo.stdout.split(" events stored")[0].split()[-1])
        # Wait until the statistics reflect every stored event.
        deadline = time.monotonic() + 30
        while True:
            _, headers = fetch(cls.base + "/v1/tables/T2?region=EAK&year=2024")
            position = headers.get("x-kpr-log-position", "")
            if sum(int(p.split(":")[1]) for p in position.split(",") if p) == stored:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"statistics at {position}, {stored} events stored")
            time.sleep(0.1)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.send_signal(signal.SIGTERM)
        cls.server.wait(timeout=30)
        cls.log.close()
        cls.tmp.cleanup()

    def test_i3_every_municipality_2020_2025_in_one_call(self):
        url = (self.base + "/v1/tables/I3/data?codelist%5BRegion%5D=vs_Kommuner"
               "&valueCodes%5BRegion%5D=*&valueCodes%5BTid%5D=range(2020,2025)")
        body, headers = fetch(url)
        dataset = pyjstat.Dataset.read(body)
        frame = dataset.write("dataframe")
        regions = set(frame["region"])
        self.assertIn("Oslo", regions)
        self.assertIn("Bergen", regions)
        self.assertEqual(len(regions), 357)
        self.assertEqual(sorted(set(frame["tid"])), [str(y) for y in range(2020, 2026)])
        self.assertEqual(len(frame), 357 * 6 * 3)
        answer = json.loads(body)
        position = ",".join(f"{p['partition']}:{p['records']}" for p in answer["extension"]["log_position"])
        self.assertEqual(headers["x-kpr-log-position"], position, "one stated position for every cell")
        # The years before the demo's data are answered with a note saying so.
        self.assertTrue(any("før første hendelse" in n for n in answer.get("note", [])), answer.get("note"))
        # The same view as CSV: the same numbers.
        csv_body, _ = fetch(url + "&outputFormat=csv")
        csv = pd.read_csv(io.StringIO(csv_body), dtype={"Region": str, "Tid": str}, na_values=[":"])
        self.assertEqual(len(csv), 357 * 6)
        codes = pyjstat.Dataset.read(body).write("dataframe", naming="id")
        shares = codes[codes["ContentsCode"] == "andel"].reset_index(drop=True)
        pd.testing.assert_series_equal(
            csv["andel"].astype(float).reset_index(drop=True), shares["value"].astype(float),
            check_names=False)

    def test_metadata_codes_equal_the_data_codes(self):
        catalogue = json.loads(fetch(self.base + "/v1/tables")[0])
        self.assertEqual(len(catalogue["tables"]), 22)
        for table in catalogue["tables"]:
            meta = pyjstat.Dataset.read(fetch(self.base + table["links"]["metadata"])[0])
            data = pyjstat.Dataset.read(fetch(
                self.base + table["links"]["data"] + "?valueCodes%5BRegion%5D=*&valueCodes%5BTid%5D=top(1)"
                + ("&valueCodes%5BTjeneste%5D=15,21" if table["id"] in ("T1", "T2") else ""))[0])
            for dim in meta["id"]:
                meta_codes = meta["dimension"][dim]["category"]["index"]
                data_codes = data["dimension"][dim]["category"]["index"]
                if dim == "Tid":
                    meta_codes = meta_codes[-1:]
                if dim == "Tjeneste" and table["id"] in ("T1", "T2"):
                    meta_codes = [c for c in meta_codes if c in ("15", "21")]
                self.assertEqual(list(data_codes), list(meta_codes), f"{table['id']} {dim}")
                for code in data_codes:
                    self.assertEqual(data["dimension"][dim]["category"]["label"][code],
                                     meta["dimension"][dim]["category"]["label"][code])

    def test_english_labels(self):
        body, _ = fetch(self.base + "/v1/tables/T2/data?valueCodes%5BRegion%5D=4601&lang=en")
        frame = pyjstat.Dataset.read(body).write("dataframe")
        self.assertEqual(set(frame["sex"]), {"Males", "Females", "Unknown", "Both sexes"})
        self.assertEqual(set(frame["region"]), {"Bergen"})


if __name__ == "__main__":
    if not KPR_BIN.exists():
        sys.exit(f"kpr binary not found at {KPR_BIN}")
    unittest.main(verbosity=2)
