#!/usr/bin/env python3
"""Independent oracle for the SPEC 5.2 figures (T1-T4, I1-I18).

Built only from /work/shared/SPEC.md (sections 1-8), proto/kpr/v1/{ingest,codes}.proto and
the README section "Statistics (HTTP)". It does not look at the Rust implementation.

It
* generates a seeded synthetic event log (persons in 0301, 4601, 4602, 4621),
* sends it through the real gRPC API (IngestService.Append) of `kpr serve`,
* computes every SPEC 5.2 figure for year 2024 (D = 2024-12-31, P = 2024) itself,
  per municipality, per county (EK03, EK46) and nationally (EAK),
* fetches the register's exact tables (admin listener, exact=true, CSV) and compares
  every cell.

Exit code 0 when every cell matches (ambiguous readings listed separately), 1 otherwise.
Run:  target/pyenv/bin/python tests/python/oracle.py [--seed N] [--keep]
"""

from __future__ import annotations

import argparse
import atexit
import csv
import datetime as dt
import importlib
import importlib.resources
import io
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "proto"
REFDATA = REPO / "refdata"

YEAR = 2024
D = dt.date(2024, 12, 31)
P_START, P_END = dt.date(2024, 1, 1), dt.date(2024, 12, 31)
WIN_LO = D - dt.timedelta(days=365)  # window: WIN_LO < date <= D

MUNIS = ["0301", "4601", "4602", "4621"]
COUNTIES = {"EK03": ["0301"], "EK46": ["4601", "4602", "4621"]}
REGIONS = {m: [m] for m in MUNIS} | COUNTIES | {"EAK": list(MUNIS)}

# ---------------------------------------------------------------- SPEC section 3
MEASURE = {1: "h", 2: "h", 3: "h", 4: "h", 5: "-", 6: "-", 7: "h", 8: "d", 9: "h", 11: "h",
           14: "-", 15: "h", 17: "h", 18: "d", 19: "d", 20: "d", 21: "d", 22: "h", 23: "-",
           24: "-", 25: "d", 26: "-", 27: "-", 28: "-", 29: "-"}
GROUP = {1: "home", 2: "home", 3: "home", 4: "activity", 5: "activity", 6: "welfare_technology",
         7: "home", 8: "institution", 9: "activity", 11: "home", 14: "coercion", 15: "home",
         17: "institution", 18: "institution", 19: "institution", 20: "institution",
         21: "institution", 22: "institution", 23: "coercion", 24: "coercion", 25: "institution",
         26: "welfare_technology", 27: "welfare_technology", 28: "welfare_technology", 29: "housing"}
GROUPS = ["home", "activity", "welfare_technology", "institution", "coercion", "housing"]
HOME = {1, 2, 3, 7, 11, 15}
SHORT = {18, 19, 20}
INSTITUTION = {8, 18, 19, 20, 21}
HOURS_TOTAL = {1, 2, 3, 4, 7, 9, 11, 15, 17, 22}
DAY_CODES = [8, 18, 19, 20, 21, 25]
H_CODES = sorted(c for c, m in MEASURE.items() if m == "h")
ALL_CODES = sorted(MEASURE)

# Age bands (SPEC 5.1) with the register's category codes (discovered from JSON-stat labels).
BANDS = {"000-017": (0, 17), "018-049": (18, 49), "050-066": (50, 66), "067-079": (67, 79),
         "080-089": (80, 89), "090+": (90, 999), "000-066": (0, 66), "080+": (80, 999),
         "999": (0, 999)}
SEXES = ["1", "2", "9", "0"]  # male, female, unknown, both

# AssessmentVariable numbers (codes.proto) by area (SPEC 5.3)
SOCIAL = [1, 2, 3, 4, 5]
PRACTICAL = [6, 7, 8, 9]
PERSONAL = [10, 11, 12, 13, 14, 15]

# ---------------------------------------------------------------- helpers

W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def ctl(digits, weights, offset=0):
    r = (sum(d * w for d, w in zip(digits, weights)) + offset) % 11
    c = (11 - r) % 11
    return None if c == 10 else c


def make_id(birth: dt.date, rng: random.Random, want_sex: str, dnum=False, rule2032=False):
    """Synthetic id (month + 80). Returns (id, birth_year, sex) as the register should derive them."""
    y = birth.year
    if 1900 <= y <= 1999:
        pools = [range(0, 500)] + ([range(900, 1000)] if y >= 1940 else [])
    elif 2000 <= y <= 2039:
        pools = [range(500, 1000)]
    else:
        raise ValueError(y)
    pool = list(rng.choice(pools))
    rng.shuffle(pool)
    day = birth.day + (40 if dnum else 0)
    prefix = f"{day:02d}{birth.month + 80:02d}{y % 100:02d}"
    for ind in pool:
        sex = "1" if (ind % 10) % 2 == 1 else "2"
        if not rule2032 and sex != want_sex:
            continue
        digits = [int(c) for c in f"{prefix}{ind:03d}"]
        if rule2032:
            # first control digit with a remainder offset 1..3 (fails the classic rule)
            S = sum(d * w for d, w in zip(digits, W1))
            k1 = None
            for off in (1, 2, 3):
                cand = (off - S) % 11
                if cand <= 9:
                    k1 = cand
                    break
            if k1 is None:
                continue
        else:
            k1 = ctl(digits, W1)
            if k1 is None:
                continue
        k2 = ctl(digits + [k1], W2)
        if k2 is None:
            continue
        return "".join(map(str, digits + [k1, k2]))
    raise RuntimeError("no id")


def org_number(rng):
    while True:
        d = [rng.randrange(10) for _ in range(8)]
        d[0] = 9
        r = sum(a * b for a, b in zip(d, (3, 2, 7, 6, 5, 4, 3, 2))) % 11
        c = (11 - r) % 11
        if c != 10:
            return "".join(map(str, d + [c]))


def day(s):
    return dt.date.fromisoformat(s) if isinstance(s, str) else s


def rank_pick(values, num, den):
    """Nearest rank: sorted values, rank ceil(p*n) with p = num/den."""
    if not values:
        return None
    v = sorted(values)
    n = len(v)
    r = max(1, -(-num * n // den))
    return v[r - 1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- generated log

class Ev:
    """One event as the oracle knows it (before conversion to protobuf)."""
    __slots__ = ("eid", "muni", "src", "ver", "sid", "pid", "kind", "f", "seq", "target", "action",
                 "rkind", "rf")

    def __init__(self, muni, pid, kind, f, src="Gerica", sid="", ver="1.0"):
        self.eid = str(uuid.uuid4())
        self.muni, self.pid, self.kind, self.f = muni, pid, kind, f
        self.src, self.sid, self.ver = src, sid, ver
        self.seq = None
        self.target = self.action = self.rkind = self.rf = None


class Gen:
    def __init__(self, seed: int, n_persons: int):
        self.rng = random.Random(seed)
        self.persons = {}  # pid -> dict(nid, by, sex, give)
        self.used_ids = set()
        self.phase1 = defaultdict(list)  # muni -> [Ev] in lifecycle order
        self.phase2 = defaultdict(list)  # corrections
        self.phase3 = defaultdict(list)  # corrections of corrections / second corrections
        self.phase4 = defaultdict(list)  # deaths
        self.phase5 = defaultdict(list)  # death corrections
        self.n = n_persons
        self.all_events = []

    def rdate(self, lo, hi):
        lo, hi = day(lo), day(hi)
        if hi < lo:
            return lo
        return lo + dt.timedelta(days=self.rng.randrange((hi - lo).days + 1))

    def person(self, i):
        r = self.rng
        age = r.choices([r.randrange(1, 18), r.randrange(18, 50), r.randrange(50, 67),
                         r.randrange(67, 80), r.randrange(80, 90), r.randrange(90, 100)],
                        weights=[5, 7, 8, 25, 33, 22])[0]
        by = YEAR - age
        birth = dt.date(by, r.randrange(1, 13), r.randrange(1, 29))
        sex = r.choice("12")
        rule2032 = r.random() < 0.06
        while True:
            nid = make_id(birth, r, sex, dnum=r.random() < 0.15, rule2032=rule2032)
            if nid not in self.used_ids:  # two generated persons must never share an id
                break
        self.used_ids.add(nid)
        give = None
        if rule2032:
            sex = r.choice(["1", "2", "9", "9"])
            give = (by, sex)
        pid = f"P{i}"
        self.persons[pid] = dict(nid=nid, by=by, sex=sex, give=give)
        return pid

    def ev(self, bucket, muni, pid, kind, f, **kw):
        e = Ev(muni, pid, kind, f, **kw)
        bucket[muni].append(e)
        self.all_events.append(e)
        return e

    def service(self, pid, muni, code, sid, src, death):
        """Lifecycle events of one service episode; returns list of (Ev) in phase1 order."""
        r = self.rng
        out = []
        E = lambda kind, f: out.append(Ev(muni, pid, kind, f, src=src, sid=sid,
                                          ver=r.choice(["1.0", "1.1", "2.0"])))
        hi_date = min(death or dt.date(2025, 12, 31), dt.date(2025, 12, 31))
        ddate = self.rdate("2023-01-01", min(hi_date, dt.date(2025, 10, 1)))
        if r.random() < 0.7:
            E("service_applied", dict(code=code, application_date=ddate - dt.timedelta(days=r.randrange(0, 120))))
        refused = r.random() < 0.12
        vfrom = ddate + dt.timedelta(days=r.randrange(0, 15))
        vto = None
        if code in SHORT or code in (8, 25):
            vto = vfrom + dt.timedelta(days=r.randrange(3, 60)) if r.random() < 0.5 else None
        elif r.random() < 0.25:
            vto = vfrom + dt.timedelta(days=r.randrange(30, 500))
        hours = None
        if MEASURE[code] == "h" and not refused:
            hours = r.choice([1, 2, 2.5, 3, 4.5, 5, 7.5, 10, 12, 20, 35.5, 36])
            if code == 3:
                hours = r.choice([20, 30, 35.5, 40])
        dec = dict(code=code, outcome=2 if refused else 1, decision_date=ddate, valid_from=vfrom, valid_to=vto,
                   hours=hours, monthly=r.random() < 0.2, respite=r.choice([1, 2]) if code == 8 else 0,
                   org=org_number(r) if r.random() < 0.1 else "")
        E("service_decided", dec)
        if refused:
            return out
        if r.random() < 0.08:
            return out  # granted, never started
        start = vfrom + dt.timedelta(days=r.randrange(-25, 40))
        if start > hi_date:
            return out
        # a second decision (re-decision) for some services
        redecide = r.random() < 0.12
        if redecide:
            d2 = self.rdate(ddate, min(hi_date, start + dt.timedelta(days=200)))
            h2 = r.choice([2, 6, 9.5, 14]) if MEASURE[code] == "h" else None
            vto2 = None if r.random() < 0.6 else d2 + dt.timedelta(days=r.randrange(10, 400))
            if vto2 is not None and vto2 < vfrom:
                vto2 = None
            dec2 = dict(dec, decision_date=d2, hours=h2, valid_to=vto2, monthly=False)
            if d2 <= start:
                E("service_decided", dec2)
                redecide = False
        E("service_started", dict(start_date=start))
        cur = start
        if redecide:
            E("service_decided", dec2)
        if MEASURE[code] == "h":
            for _ in range(r.choice([0, 0, 1, 1, 2])):
                cur = self.rdate(cur, min(hi_date, cur + dt.timedelta(days=300)))
                E("service_hours_changed", dict(effective_date=cur, hours=r.choice([3, 5.5, 8, 16, 24, 40]),
                                                 monthly=r.random() < 0.2))
            if r.random() < 0.1:  # same effective date twice: later in log order wins
                E("service_hours_changed", dict(effective_date=cur, hours=r.choice([1.5, 11]), monthly=False))
        open_pause = False
        if r.random() < 0.25:
            p = self.rdate(cur + dt.timedelta(days=1), min(hi_date, cur + dt.timedelta(days=300)))
            if p <= hi_date and p > cur:
                E("service_paused", dict(date=p, reason=r.choice([1, 2, 3])))
                cur = p
                open_pause = True
                if r.random() < 0.7:
                    q = self.rdate(p + dt.timedelta(days=1), min(hi_date, p + dt.timedelta(days=90)))
                    if q > p:
                        E("service_resumed", dict(date=q))
                        cur = q
                        open_pause = False
        if not open_pause:
            pend = 0.7 if code in SHORT or code in (8, 25) else 0.3
            if r.random() < pend:
                end = self.rdate(cur, min(hi_date, cur + dt.timedelta(days=r.choice([20, 90, 400]))))
                reason = r.choice([2, 3, 3, 4, 5, 1]) if code == 19 else r.choice([1, 2, 3, 4, 5])
                if reason == 1 and death is None:
                    reason = 3
                E("service_ended", dict(end_date=end, reason=reason))
        return out

    def build(self):
        r = self.rng
        codes_w = [(15, 30), (1, 12), (6, 12), (21, 14), (18, 5), (19, 7), (20, 3), (8, 4), (2, 3),
                   (3, 3), (4, 4), (5, 4), (7, 2), (9, 3), (11, 3), (14, 1), (17, 2), (22, 2), (23, 1),
                   (24, 1), (25, 3), (26, 2), (27, 2), (28, 2), (29, 3)]
        cs, ws = zip(*codes_w)
        self.deaths = {}
        for i in range(self.n):
            pid = self.person(i)
            home = r.choice(MUNIS)
            munis = [home]
            if r.random() < 0.12:
                munis.append(r.choice([m for m in MUNIS if m != home]))
            death = None
            if r.random() < 0.18:
                death = self.rdate("2023-06-01", "2025-11-30")
            for m in munis:
                nserv = r.choice([1, 1, 2, 2, 3, 4])
                chosen = [r.choices(cs, ws)[0] for _ in range(nserv)]
                if r.random() < 0.08:
                    chosen += [15, 15]  # two home-nursing episodes
                if r.random() < 0.05:
                    chosen += [3, 15, 1]  # many hours: tests the 35.5 h threshold
                sid_base = r.randrange(10 ** 6)
                for k, c in enumerate(chosen):
                    src = r.choice(["Gerica", "Gerica", "Profil", "CosDoc"])
                    sid = f"S-{sid_base}-{k}" if r.random() < 0.9 else f"S-{sid_base}-X"  # reuse across systems
                    if any(e.sid == sid and e.src == src for e in self.phase1[m]):
                        sid = f"S-{sid_base}-{k}-b"
                    if c == 21 and r.random() < 0.6:
                        wl = self.rdate("2023-01-01", min(death or dt.date(2025, 9, 1), dt.date(2025, 9, 1)))
                        self.ev(self.phase1, m, pid, "waiting_list_entered", dict(code=21, date=wl))
                        if r.random() < 0.2:
                            self.ev(self.phase1, m, pid, "waiting_list_entered",
                                    dict(code=21, date=wl + dt.timedelta(days=r.randrange(1, 40))))
                    evs = self.service(pid, m, c, sid, src, death)
                    for e in evs:
                        self.phase1[m].append(e)
                        self.all_events.append(e)
                if r.random() < 0.1:  # waiting list without (yet) a start
                    self.ev(self.phase1, m, pid, "waiting_list_entered",
                            dict(code=21, date=self.rdate("2023-06-01", min(death or dt.date(2025, 6, 1), dt.date(2025, 6, 1)))))
                # assessments
                for _ in range(r.choice([0, 1, 1, 2])):
                    ad = self.rdate("2023-01-01", min(death or dt.date(2025, 12, 31), dt.date(2025, 12, 31)))
                    lvl = r.random()
                    scores = {}
                    for v in range(1, 18):
                        if r.random() < 0.12:
                            s = 9
                        elif lvl < 0.35:
                            s = r.choice([1, 1, 2, 2, 3])
                        elif lvl < 0.65:
                            s = r.choice([2, 3, 3, 4])
                        else:
                            s = r.choice([3, 4, 4, 5])
                        scores[v] = s
                    if r.random() < 0.1:  # many not relevant -> unknown
                        for v in r.sample(range(1, 16), 9):
                            scores[v] = 9
                    if r.random() < 0.1:  # some variables left out
                        for v in r.sample(range(1, 18), 3):
                            scores.pop(v, None)
                    self.ev(self.phase1, m, pid, "functional_assessment", dict(date=ad, scores=scores))
                # health checks
                for _ in range(r.choice([0, 1, 2, 3, 4])):
                    kind = r.choice([1, 2, 3, 4, 4])
                    hd = r.choice([self.rdate("2023-06-01", "2025-06-01"), dt.date(2024, 1, 1), dt.date(2024, 1, 2),
                                   dt.date(2024, 12, 31), dt.date(2023, 12, 31)])
                    if death and hd > death:
                        hd = death
                    f = dict(kind=kind, date=hd)
                    if kind == 4:
                        f["at_risk"] = r.random() < 0.5
                        f["plan_made"] = f["at_risk"] and r.random() < 0.6
                    self.ev(self.phase1, m, pid, "health_check", f)
            if death:
                self.deaths[pid] = (munis[0], death)
                self.ev(self.phase4, munis[0], pid, "person_died", dict(date_of_death=death))
        self.corrections()

    def corrections(self):
        r = self.rng
        for m in MUNIS:
            base = list(self.phase1[m])
            by_service = defaultdict(list)
            for e in base:
                if e.sid:
                    by_service[(e.src, e.sid)].append(e)
            done = set()
            moved = defaultdict(list)  # (src, sid) -> replacement dates already chosen
            for e in base:
                if r.random() > 0.09 or e.eid in done:
                    continue
                svc = by_service.get((e.src, e.sid), [])
                later = [x for x in svc if svc.index(x) > svc.index(e)] if e.sid else []
                earlier = [x for x in svc if svc.index(x) < svc.index(e)] if e.sid else []
                rep = None
                act = 1
                k = e.kind
                if k == "health_check":
                    if r.random() < 0.4:
                        act = 1
                    else:
                        rep = dict(e.f, date=min(e.f["date"] + dt.timedelta(days=r.randrange(-20, 20)),
                                                 dt.date(2025, 12, 31)))
                        if e.f["kind"] == 4:
                            rep["at_risk"] = not e.f["at_risk"]
                            rep["plan_made"] = rep["at_risk"] and r.random() < 0.5
                        dp = self.deaths.get(e.pid)
                        if dp and rep["date"] > dp[1]:
                            rep["date"] = dp[1]
                        act = 2
                elif k == "functional_assessment":
                    sc = {v: (min(5, s + 2) if s != 9 else 9) for v, s in e.f["scores"].items()}
                    rep, act = dict(e.f, scores=sc), 2
                elif k == "waiting_list_entered":
                    if r.random() < 0.5:
                        act = 1
                    else:
                        nd = e.f["date"] - dt.timedelta(days=r.randrange(1, 30))
                        rep, act = dict(e.f, date=nd), 2
                elif k == "service_applied":
                    if r.random() < 0.5:
                        act = 1
                    else:
                        dec = [x for x in later if x.kind == "service_decided"]
                        nd = e.f["application_date"] - dt.timedelta(days=r.randrange(1, 40))
                        rep, act = dict(e.f, application_date=nd), 2
                elif k == "service_decided":
                    if e.f["outcome"] != 1:
                        continue
                    rep = dict(e.f)
                    if MEASURE[e.f["code"]] == "h":
                        rep["hours"] = r.choice([4, 8.5, 37])
                        rep["monthly"] = False
                    else:
                        st = [x for x in svc if x.kind == "service_started"]
                        if st and r.random() < 0.5:
                            rep["valid_to"] = max(rep["valid_from"], st[0].f["start_date"]) + dt.timedelta(days=r.randrange(5, 100))
                        else:
                            rep["valid_to"] = None
                    act = 2
                elif k == "service_started":
                    nxt = [x for x in later if x.kind != "service_decided"]
                    dec = [x for x in svc if x.kind == "service_decided"][0]
                    lo = dec.f["valid_from"] - dt.timedelta(days=30)
                    hi = min([self._edate(x) for x in nxt] + [e.f["start_date"] + dt.timedelta(days=20),
                              self.deaths.get(e.pid, (0, dt.date(2025, 12, 31)))[1], dt.date(2025, 12, 31)])
                    nd = self.rdate(max(lo, e.f["start_date"] - dt.timedelta(days=20)), hi)
                    rep, act = dict(start_date=nd), 2
                    moved[(e.src, e.sid)].append(nd)
                elif k == "service_hours_changed":
                    if r.random() < 0.5:
                        act = 1
                    else:
                        rep, act = dict(e.f, hours=r.choice([2, 17.5, 30]), monthly=False), 2
                elif k == "service_ended":
                    if r.random() < 0.4:
                        act = 1
                    else:
                        lo = max([self._edate(x) for x in earlier if x.kind != "service_decided"]
                                 + moved[(e.src, e.sid)])
                        hi = min(dt.date(2025, 12, 31), self.deaths.get(e.pid, (0, dt.date(2025, 12, 31)))[1])
                        nd = self.rdate(lo, hi)
                        reason = r.choice([2, 3, 4, 5]) if e.f["reason"] != 1 else 1
                        rep, act = dict(end_date=nd, reason=reason), 2
                else:
                    continue
                c = Ev(m, e.pid, "correction", {}, src=e.src, sid=e.sid)
                c.target, c.action, c.rkind, c.rf = e.eid, act, (e.kind if act == 2 else None), rep
                self.phase2[m].append(c)
                self.all_events.append(c)
                done.add(e.eid)
                x = r.random()
                if x < 0.15:  # void the correction: the original stands again
                    c2 = Ev(m, e.pid, "correction", {}, src=e.src, sid=e.sid)
                    c2.target, c2.action = c.eid, 1
                    self.phase3[m].append(c2)
                    self.all_events.append(c2)
                elif x < 0.25 and act == 2 and k in ("health_check", "functional_assessment", "service_decided"):
                    c2 = Ev(m, e.pid, "correction", {}, src=e.src, sid=e.sid)
                    rep2 = dict(rep)
                    if k == "health_check":
                        rep2["date"] = min(rep["date"] + dt.timedelta(days=3), dt.date(2025, 12, 31))
                        dp = self.deaths.get(e.pid)
                        if dp and rep2["date"] > dp[1]:
                            rep2["date"] = dp[1]
                    elif k == "functional_assessment":
                        rep2["scores"] = {v: 1 if s != 9 else 9 for v, s in rep["scores"].items()}
                    elif MEASURE[rep["code"]] == "h":
                        rep2["hours"] = 12.5
                    c2.target, c2.action, c2.rkind, c2.rf = e.eid, 2, e.kind, rep2
                    self.phase3[m].append(c2)
                    self.all_events.append(c2)
        # death corrections
        for pid, (m, dd) in list(self.deaths.items()):
            x = r.random()
            if x < 0.15 or x > 0.3:
                continue
            e = [e for e in self.phase4[m] if e.pid == pid][0]
            c = Ev(m, pid, "correction", {})
            if x < 0.22:
                c.target, c.action = e.eid, 1
            else:
                nd = min(dd + dt.timedelta(days=r.randrange(1, 60)), dt.date(2025, 12, 31))
                c.target, c.action, c.rkind, c.rf = e.eid, 2, "person_died", dict(date_of_death=nd)
            self.phase5[m].append(c)
            self.all_events.append(c)

    @staticmethod
    def _edate(e):
        f = e.f
        for k in ("start_date", "effective_date", "date", "end_date", "decision_date", "application_date"):
            if k in f:
                return day(f[k])
        raise KeyError(e.kind)


# ---------------------------------------------------------------- protobuf conversion

pb = codes_pb = ig = grpc = health_pb2 = health_pb2_grpc = None


def load_stubs(out: Path):
    global pb, codes_pb, ig, grpc, health_pb2, health_pb2_grpc
    from grpc_tools import protoc
    wk = str(importlib.resources.files("grpc_tools") / "_proto")
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{wk}", f"--python_out={out}", f"--grpc_python_out={out}",
                      "kpr/v1/codes.proto", "kpr/v1/events.proto", "kpr/v1/ingest.proto"])
    if rc:
        raise RuntimeError("protoc failed")
    sys.path.insert(0, str(out))
    importlib.invalidate_caches()
    import grpc as g
    from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as hg
    grpc, health_pb2, health_pb2_grpc = g, h, hg
    pb = importlib.import_module("kpr.v1.ingest_pb2")
    codes_pb = importlib.import_module("kpr.v1.codes_pb2")
    ig = importlib.import_module("kpr.v1.ingest_pb2_grpc")


def code_text(c, rng):
    return f"{c:02d}" if rng.random() < 0.5 else str(c)


def payload_of(kind, f, rng):
    iso = lambda d: d.isoformat() if d else ""
    if kind == "service_applied":
        return pb.Payload(service_applied=pb.ServiceApplied(code=code_text(f["code"], rng), application_date=iso(f["application_date"])))
    if kind == "service_decided":
        m = pb.ServiceDecided(code=code_text(f["code"], rng), outcome=f["outcome"], decision_date=iso(f["decision_date"]),
                              valid_from=iso(f["valid_from"]), valid_to=iso(f["valid_to"]),
                              respite_kind=f["respite"], provider_org_number=f["org"])
        if f["hours"] is not None:
            if f["monthly"]:
                m.hours_per_month = f["hours"] * 4
            else:
                m.hours_per_week = f["hours"]
        return pb.Payload(service_decided=m)
    if kind == "service_started":
        return pb.Payload(service_started=pb.ServiceStarted(start_date=iso(f["start_date"])))
    if kind == "service_hours_changed":
        m = pb.ServiceHoursChanged(effective_date=iso(f["effective_date"]))
        if f["monthly"]:
            m.hours_per_month = f["hours"] * 4
        else:
            m.hours_per_week = f["hours"]
        return pb.Payload(service_hours_changed=m)
    if kind == "service_paused":
        return pb.Payload(service_paused=pb.ServicePaused(date=iso(f["date"]), reason=f["reason"]))
    if kind == "service_resumed":
        return pb.Payload(service_resumed=pb.ServiceResumed(date=iso(f["date"])))
    if kind == "service_ended":
        return pb.Payload(service_ended=pb.ServiceEnded(end_date=iso(f["end_date"]), reason=f["reason"]))
    if kind == "waiting_list_entered":
        return pb.Payload(waiting_list_entered=pb.WaitingListEntered(code=str(f["code"]), date=iso(f["date"])))
    if kind == "functional_assessment":
        return pb.Payload(functional_assessment=pb.FunctionalAssessment(
            date=iso(f["date"]), scores=[pb.Score(variable=v, score=s) for v, s in sorted(f["scores"].items())]))
    if kind == "health_check":
        m = pb.HealthCheck(kind=f["kind"], date=iso(f["date"]))
        if "at_risk" in f:
            m.at_risk = f["at_risk"]
            m.plan_made = f["plan_made"]
        return pb.Payload(health_check=m)
    if kind == "person_died":
        return pb.Payload(person_died=pb.PersonDied(date_of_death=iso(f["date_of_death"])))
    raise KeyError(kind)


def to_proto(e: Ev, persons, rng):
    p = persons[e.pid]
    person = pb.Person(national_id=p["nid"])
    if p["give"]:
        person.birth_year = p["give"][0]
        person.sex = {"1": 1, "2": 2, "9": 3}[p["give"][1]]
    ev = pb.Event(event_id=e.eid, municipality=e.muni, source_system=e.src, source_version=e.ver,
                  person=person, service_id=e.sid)
    ev.recorded_at.GetCurrentTime()
    if e.kind == "correction":
        c = pb.Correction(corrects_event_id=e.target, action=e.action)
        if e.action == 2:
            c.replacement.CopyFrom(payload_of(e.rkind, e.rf, rng))
        ev.payload.CopyFrom(pb.Payload(correction=c))
    else:
        ev.payload.CopyFrom(payload_of(e.kind, e.f, rng))
    return ev


# ---------------------------------------------------------------- server

class Server:
    def __init__(self, binary: Path, work: Path):
        self.binary, self.work = binary, work
        self.proc = None

    def start(self):
        for attempt in range(3):
            self.ports = [free_port() for _ in range(3)]
            cmd = [str(self.binary), "serve", "--data", str(self.work / "data"),
                   "--addr", f"127.0.0.1:{self.ports[0]}", "--stats-addr", f"127.0.0.1:{self.ports[1]}",
                   "--admin-addr", f"127.0.0.1:{self.ports[2]}", "--allow-synthetic-ids"]
            env = {k: v for k, v in os.environ.items() if not k.startswith("KPR_")}
            self.out = open(self.work / "server.log", "wb")
            self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
            atexit.register(self.kill)
            self.channel = grpc.insecure_channel(f"127.0.0.1:{self.ports[0]}")
            h = health_pb2_grpc.HealthStub(self.channel)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    if h.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status == 1:
                        self.stub = ig.IngestServiceStub(self.channel)
                        self.tokens = {}
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
            self.kill()
        raise RuntimeError("server did not come up:\n" + (self.work / "server.log").read_text()[-3000:])

    def stop(self):
        self.channel.close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
                return -9
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def token(self, *args):
        """A token from the register's local issuer, minted by its own CLI
        (`kpr auth token`), as an operator would for a municipality's EHR."""
        if args not in self.tokens:
            out = subprocess.run([str(self.binary), "auth", "token", "--data", str(self.work / "data"), *args],
                                 check=True, capture_output=True, text=True)
            self.tokens[args] = out.stdout.strip()
        return self.tokens[args]

    def ingest_metadata(self, municipality):
        return [("authorization", "Bearer " + self.token("--role", "ingest", "--municipality", municipality))]

    def table(self, fig, region):
        url = f"http://127.0.0.1:{self.ports[2]}/v1/tables/{fig}?region={region}&year={YEAR}&format=csv&exact=true"
        request = urllib.request.Request(url, headers={"Authorization": "Bearer " + self.token("--role", "operator")})
        with urllib.request.urlopen(request, timeout=60) as r:
            body = r.read().decode("utf-8")
            hdr = {k.lower(): v for k, v in r.headers.items()}
        return list(csv.DictReader(io.StringIO(body))), hdr


def send(server: Server, gen: Gen):
    from grpc_status import rpc_status
    from google.rpc import error_details_pb2
    seq = 0
    prng = random.Random(7)
    for phase in (gen.phase1, gen.phase2, gen.phase3, gen.phase4, gen.phase5):
        for m in MUNIS:
            evs = phase.get(m, [])
            for i in range(0, len(evs), 5000):
                chunk = evs[i:i + 5000]
                req = pb.AppendRequest(events=[to_proto(e, gen.persons, prng) for e in chunk])
                try:
                    resp = server.stub.Append(req, timeout=120, metadata=server.ingest_metadata(m))
                except grpc.RpcError as err:
                    msg = f"batch refused: {err.code().name} {err.details()}"
                    st = rpc_status.from_call(err)
                    if st:
                        for d in st.details:
                            for cls in (error_details_pb2.BadRequest, error_details_pb2.PreconditionFailure):
                                if d.Is(cls.DESCRIPTOR):
                                    x = cls()
                                    d.Unpack(x)
                                    for v in list(getattr(x, "field_violations", []))[:10] + list(getattr(x, "violations", []))[:10]:
                                        msg += f"\n  {v}"
                                        idx = None
                                        s = getattr(v, "field", "") or getattr(v, "subject", "")
                                        if s.startswith("events["):
                                            idx = int(s[7:s.index("]")])
                                            ce = chunk[idx]
                                            msg += f"    -> {ce.kind} {ce.f} target={ce.target} rkind={ce.rkind} rf={ce.rf}"
                    raise RuntimeError(msg) from None
                assert len(resp.acks) == len(chunk)
                for e in chunk:
                    e.seq = seq
                    seq += 1
    return seq


# ---------------------------------------------------------------- oracle model

class Model:
    def __init__(self, gen: Gen):
        self.gen = gen
        evs = [e for e in gen.all_events if e.seq is not None]
        evs.sort(key=lambda e: e.seq)
        byid = {e.eid: e for e in evs}
        corr_of = defaultdict(list)  # target -> corrections (log order)
        for e in evs:
            if e.kind == "correction":
                corr_of[e.target].append(e)

        memo = {}

        def live(c):  # a correction is live unless a live VOID correction targets it
            if c.eid in memo:
                return memo[c.eid]
            memo[c.eid] = True
            cs = [x for x in corr_of.get(c.eid, []) if live(x)]
            res = not (cs and cs[-1].action == 1)
            memo[c.eid] = res
            return res

        eff = []  # (seq, kind, f, event)
        for e in evs:
            if e.kind == "correction":
                continue
            cs = [c for c in corr_of.get(e.eid, []) if live(c)]
            if not cs:
                eff.append((e.seq, e.kind, e.f, e))
            elif cs[-1].action == 2:
                eff.append((e.seq, cs[-1].rkind, cs[-1].rf, e))
        self.eff = eff
        # persons
        self.by = {pid: p["by"] for pid, p in gen.persons.items()}
        self.sex = {pid: p["sex"] for pid, p in gen.persons.items()}
        self.death = {}
        for seq, kind, f, e in eff:
            if kind == "person_died":
                self.death[e.pid] = f["date_of_death"]
        # services
        svc = defaultdict(list)
        self.wl = defaultdict(list)  # (pid, muni) -> [date]
        self.assess = defaultdict(list)  # pid -> [(date, seq, scores)]
        self.checks = defaultdict(list)  # pid -> [(date, seq, f)]
        for seq, kind, f, e in eff:
            if kind.startswith("service_"):
                svc[(e.muni, e.src, e.sid)].append((seq, kind, f, e))
            elif kind == "waiting_list_entered":
                self.wl[(e.pid, e.muni)].append(f["date"])
            elif kind == "functional_assessment":
                self.assess[e.pid].append((f["date"], seq, f["scores"]))
            elif kind == "health_check":
                self.checks[e.pid].append((f["date"], seq, f))
        self.services = []
        for key, lst in svc.items():
            s = dict(muni=key[0], pid=lst[0][3].pid, app=None, decs=[], start=None, hc=[], pr=[], end=None)
            for seq, kind, f, e in lst:
                if kind == "service_applied":
                    s["app"] = f["application_date"]
                elif kind == "service_decided":
                    s["decs"].append(f)
                elif kind == "service_started":
                    s["start"] = f["start_date"]
                elif kind == "service_hours_changed":
                    s["hc"].append((f["effective_date"], seq, f["hours"]))
                elif kind in ("service_paused", "service_resumed"):
                    s["pr"].append((kind, f["date"]))
                elif kind == "service_ended":
                    s["end"] = f
            if not s["decs"]:
                continue
            d = s["decs"][-1]  # latest in log order is in force
            s["code"], s["dec"] = d["code"], d
            s["granted"] = d["outcome"] == 1
            # pauses pair in log order
            pauses, cur = [], None
            for kind, x in s["pr"]:
                if kind == "service_paused" and cur is None:
                    cur = x
                elif kind == "service_resumed" and cur is not None:
                    pauses.append((cur, x))
                    cur = None
            if cur is not None:
                pauses.append((cur, None))
            s["pauses"] = pauses
            last = [x for x in (s["end"]["end_date"] if s["end"] else None, d["valid_to"], self.death.get(s["pid"])) if x]
            s["last"] = min(last) if last else None
            self.services.append(s)

    def active(self, s, x):
        if not s["granted"] or s["start"] is None or s["start"] > x:
            return False
        if s["last"] is not None and x > s["last"]:
            return False
        for a, b in s["pauses"]:
            if a <= x and (b is None or x < b):
                return False
        return True

    def active_days(self, s, lo, hi):
        n = 0
        x = lo
        while x <= hi:
            if self.active(s, x):
                n += 1
            x += dt.timedelta(days=1)
        return n

    def hours(self, s, x):
        h = s["dec"]["hours"]
        best = None
        for eff_date, seq, hh in s["hc"]:
            if eff_date <= x and (best is None or (eff_date, seq) > best[:2]):
                best = (eff_date, seq, hh)
        return best[2] if best else h

    def alive(self, pid, x):
        dd = self.death.get(pid)
        return dd is None or dd >= x

    def age(self, pid):
        return YEAR - self.by[pid]

    def need_extensive(self, pid, x):
        cand = [a for a in self.assess.get(pid, []) if a[0] <= x]
        if not cand:
            return False
        sc = max(cand, key=lambda a: (a[0], a[1]))[2]
        valid = {v: s for v, s in sc.items() if 1 <= s <= 5 and v <= 15}
        if len(valid) < 8:
            return False  # UNKNOWN

        def mean(area):
            vals = [valid[v] for v in area if v in valid]
            return sum(vals) / len(vals) if vals else None
        pc, so = mean(PERSONAL), mean(SOCIAL)
        return (pc is not None and pc >= 3.5) or (so is not None and so >= 3.5)

    def latest_check(self, pid, kind):
        cand = [c for c in self.checks.get(pid, []) if c[2]["kind"] == kind and WIN_LO < c[0] <= D]
        return max(cand, key=lambda c: (c[0], c[1])) if cand else None


def load_population(year):
    pop = defaultdict(int)  # (muni, sex, age) -> n
    with open(REFDATA / "befolkning_kommune_kjonn_alder_2024-2026.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if int(row["aar"]) == year:
                pop[(row["kommunenummer"], row["kjonn"], int(row["alder"]))] += int(row["personer"])
    return pop


def ratio(a, b, scale=1):
    return None if not b else a / b * scale


def compute(model: Model, pop, alt=False):
    """Oracle tables: {(fig, region): {key tuple: {measure: value}}}. alt=True: alternative readings."""
    out = {}
    all_munis = sorted({k[0] for k in pop})

    def popn(munis, band, sex="0"):
        lo, hi = BANDS[band]
        sexes = ["1", "2"] if sex == "0" else [sex]
        if sex == "9":
            return 0
        return sum(pop[(m, s, a)] for m in munis for s in sexes for a in range(lo, min(hi, 105) + 1))

    def in_band(pid, band):
        lo, hi = BANDS[band]
        return lo <= model.age(pid) <= hi

    pdays = []
    x = P_START
    while x <= P_END:
        pdays.append(x)
        x += dt.timedelta(days=1)
    # precompute per service: active on D, active in P, days in P
    for s in model.services:
        s["onD"] = model.active(s, D)
        s["daysP"] = model.active_days(s, P_START, P_END)
        s["hD"] = model.hours(s, D) if s["onD"] and MEASURE[s["code"]] == "h" else 0

    for reg, munis in REGIONS.items():
        if reg == "EAK":
            popm = all_munis
        elif reg.startswith("EK"):
            popm = [m for m in all_munis if m[:2] == reg[2:]]  # SPEC 5.4: all municipalities of the county
        else:
            popm = munis
        S = [s for s in model.services if s["muni"] in munis]
        onD = defaultdict(set)   # code -> persons
        inP = defaultdict(set)
        for s in S:
            if s["onD"]:
                onD[s["code"]].add(s["pid"])
            if s["daysP"]:
                inP[s["code"]].add(s["pid"])
        union = lambda dct, codes: set().union(*[dct[c] for c in codes]) if codes else set()
        # T1, T2
        for fig, dct in (("T1", inP), ("T2", onD)):
            t = {}
            for c in ALL_CODES:
                for band in BANDS:
                    for sx in SEXES:
                        n = sum(1 for p in dct[c] if in_band(p, band) and (sx == "0" or model.sex[p] == sx))
                        t[(f"{c:02d}", band, sx)] = {"personer": n}
            out[(fig, reg)] = t
        # T3
        t = {}
        for c in H_CODES:
            n = len(onD[c])
            h = sum(s["hD"] for s in S if s["code"] == c and s["onD"])
            t[(f"{c:02d}",)] = {"personer": n, "timer": h, "timer_snitt": ratio(h, n)}
        out[("T3", reg)] = t
        # T4
        out[("T4", reg)] = {(f"{c:02d}",): {"dogn": sum(s["daysP"] for s in S if s["code"] == c)} for c in DAY_CODES}
        # I1-I3
        p80 = popn(popm, "080+")
        for fig, codes_ in (("I1", {21}), ("I2", INSTITUTION), ("I3", HOME)):
            n = sum(1 for p in union(onD, codes_) if model.age(p) >= 80)
            out[(fig, reg)] = {(): {"teller": n, "nevner": p80, "andel": ratio(n, p80)}}
        # I4
        t = {}
        for g in GROUPS + ["all"]:
            codes_ = ALL_CODES if g == "all" else [c for c in ALL_CODES if GROUP[c] == g]
            ps = union(onD, codes_)
            for band in BANDS:
                n = sum(1 for p in ps if in_band(p, band))
                pb_ = popn(popm, band)
                t[(g, band)] = {"teller": n, "nevner": pb_, "andel": ratio(n, pb_, 1000)}
        out[("I4", reg)] = t
        # I5, I6, I7
        h15 = sum(s["hD"] for s in S if s["code"] == 15 and s["onD"])
        n15 = len(onD[15])
        out[("I5", reg)] = {(): {"timer": h15, "personer": n15, "timer_snitt": ratio(h15, n15)}}
        per = defaultdict(float)
        for s in S:
            if s["onD"] and s["code"] in HOURS_TOTAL:
                per[s["pid"]] += s["hD"]
        htot = sum(per.values())
        out[("I6", reg)] = {(): {"timer": htot, "personer": len(per), "timer_snitt": ratio(htot, len(per))}}
        perh = defaultdict(float)
        for s in S:
            if s["onD"] and s["code"] in HOME:
                perh[s["pid"]] += s["hD"]
        n7 = sum(1 for v in perh.values() if v > 35.5 + 1e-9)
        out[("I7", reg)] = {(): {"teller": n7, "nevner": len(perh), "andel": ratio(n7, len(perh))}}
        # I8
        homeu = union(onD, HOME)
        t = {}
        for g, ps in (("home_0_66", {p for p in homeu if model.age(p) <= 66}),
                      ("home_67", {p for p in homeu if model.age(p) >= 67}),
                      ("long_term", onD[21])):
            n = sum(1 for p in ps if model.need_extensive(p, D))
            t[(g,)] = {"omfattende": n, "personer": len(ps), "andel": ratio(n, len(ps))}
        out[("I8", reg)] = t
        # I9
        n9 = sum(1 for p in union(inP, SHORT) if model.age(p) >= 80)
        out[("I9", reg)] = {(): {"teller": n9, "nevner": p80, "andel": ratio(n9, p80, 1000)}}
        # I10-I13
        res = onD[21]
        res67 = {p for p in res if model.age(p) >= 67}
        n10 = sum(1 for p in res if model.latest_check(p, 1))
        out[("I10", reg)] = {(): {"teller": n10, "nevner": len(res), "andel": ratio(n10, len(res))}}
        n11 = sum(1 for p in res67 if model.latest_check(p, 3))
        out[("I11", reg)] = {(): {"teller": n11, "nevner": len(res67), "andel": ratio(n11, len(res67))}}
        scr = {p: model.latest_check(p, 4) for p in res67}
        scr = {p: c for p, c in scr.items() if c}
        risk = {p for p, c in scr.items() if c[2].get("at_risk")}
        plan = {p for p in risk if scr[p][2].get("plan_made")}
        out[("I12", reg)] = {(): {"kartlagt": len(scr), "beboere_67": len(res67), "andel_kartlagt": ratio(len(scr), len(res67)),
                                  "risiko": len(risk), "andel_risiko": ratio(len(risk), len(scr)),
                                  "plan": len(plan), "andel_plan": ratio(len(plan), len(risk))}}
        n13 = sum(1 for p in res if model.latest_check(p, 2))
        out[("I13", reg)] = {(): {"teller": n13, "nevner": len(res), "andel": ratio(n13, len(res))}}
        # I14
        anyP = union(inP, ALL_CODES)
        t = {}
        for band in BANDS:
            for sx in SEXES:
                n = sum(1 for p in anyP if in_band(p, band) and (sx == "0" or model.sex[p] == sx))
                d_ = popn(popm, band, sx)
                t[(band, sx)] = {"teller": n, "nevner": d_, "andel": ratio(n, d_)}
        out[("I14", reg)] = t
        # I15
        t = {}
        for g in GROUPS:
            vals = []
            for s in S:
                if GROUP[s["code"]] != g or s["app"] is None:
                    continue
                decs = [s["dec"]] if alt else s["decs"]
                for d in decs:
                    if P_START <= d["decision_date"] <= P_END:
                        vals.append((d["decision_date"] - s["app"]).days)
            t[(g,)] = {"antall": len(vals), "median": rank_pick(vals, 1, 2), "p90": rank_pick(vals, 9, 10)}
        out[("I15", reg)] = t
        # I16
        t = {}
        for g in GROUPS:
            vals = [(s["start"] - s["dec"]["decision_date"]).days for s in S
                    if GROUP[s["code"]] == g and s["granted"] and s["start"] and P_START <= s["start"] <= P_END]
            ns = {s["pid"] for s in S if GROUP[s["code"]] == g and s["granted"] and s["dec"]["decision_date"] <= D
                  and (s["start"] is None or s["start"] > D) and model.alive(s["pid"], D)}
            t[(g,)] = {"antall": len(vals), "median": rank_pick(vals, 1, 2), "p90": rank_pick(vals, 9, 10),
                       "ikke_startet": len(ns)}
        out[("I16", reg)] = t
        # I17
        waiting = set()
        waits = []
        nstarts_all = 0
        for m in munis:
            starts = defaultdict(list)  # pid -> start dates of code-21 services in m
            for s in model.services:
                if s["muni"] == m and s["code"] == 21 and s["granted"] and s["start"]:
                    starts[s["pid"]].append(s["start"])
            for (pid, mm), entries in model.wl.items():
                if mm != m:
                    continue
                for e in entries:
                    if e <= D and not any(e <= st <= D for st in starts[pid]) and model.alive(pid, D):
                        waiting.add(pid)
            for pid, sts in starts.items():
                sts = sorted(sts)
                entries = sorted(model.wl.get((pid, m), []))
                for st in sts:
                    if P_START <= st <= P_END:
                        nstarts_all += 1
                    # entries open at st: entry <= st, not closed by an earlier start in [entry, st)
                    openent = [e for e in entries if e <= st and not any(e <= s2 < st for s2 in sts)]
                    if openent and P_START <= st <= P_END:
                        waits.append((st - min(openent)).days)
        out[("I17", reg)] = {(): {"venter": len(waiting), "oppstarter": nstarts_all if alt else len(waits),
                                  "median": rank_pick(waits, 1, 2)}}
        # I18
        ended = [s for s in S if s["code"] == 19 and s["end"] and P_START <= s["end"]["end_date"] <= P_END and s["granted"]]
        good = [s for s in ended if s["end"]["reason"] not in (1, 2)]
        if alt:
            out[("I18", reg)] = {(): {"teller": len({s["pid"] for s in good}), "nevner": len({s["pid"] for s in ended}),
                                      "andel": ratio(len({s["pid"] for s in good}), len({s["pid"] for s in ended}))}}
        else:
            out[("I18", reg)] = {(): {"teller": len(good), "nevner": len(ended), "andel": ratio(len(good), len(ended))}}
    return out


def print_coverage(gen, model, ora, alt):
    """What the generated log exercises (so a clean run means something)."""
    c = defaultdict(int)
    for e in gen.all_events:
        if e.seq is None:
            continue
        if e.kind == "correction":
            tgt = "correction" if any(x.eid == e.target and x.kind == "correction" for x in gen.all_events) else "event"
            c[f"correction {'VOID' if e.action == 1 else 'REPLACE'} of {tgt}"] += 1
        else:
            c[e.kind] += 1
    c["persons 2032-rule id (birth year/sex given)"] = sum(1 for p in gen.persons.values() if p["give"])
    c["persons sex unknown"] = sum(1 for p in gen.persons.values() if p["sex"] == "9")
    c["persons dead (effective)"] = len(model.death)
    c["persons in >1 municipality"] = sum(1 for n in defaultdict(set, {}).values())
    pm = defaultdict(set)
    for s in model.services:
        pm[s["pid"]].add(s["muni"])
    c["persons in >1 municipality"] = sum(1 for v in pm.values() if len(v) > 1)
    c["services"] = len(model.services)
    c["services refused (in force)"] = sum(1 for s in model.services if not s["granted"])
    c["services with >1 decision"] = sum(1 for s in model.services if len(s["decs"]) > 1)
    c["services with in-force decision dated after D"] = sum(1 for s in model.services if s["dec"]["decision_date"] > D)
    c["services start before valid_from"] = sum(1 for s in model.services if s["start"] and s["start"] < s["dec"]["valid_from"])
    c["services active on D"] = sum(1 for s in model.services if s.get("onD"))
    c["services open pause at D"] = sum(1 for s in model.services if s["pauses"] and s["pauses"][-1][1] is None)
    c["services cut by death"] = sum(1 for s in model.services if s["last"] and model.death.get(s["pid"]) == s["last"])
    c["services cut by valid_to"] = sum(1 for s in model.services if s["last"] and s["dec"]["valid_to"] == s["last"])
    for k in sorted(c):
        print(f"  {k:52} {c[k]}")
    nz = sum(1 for t in ora.values() for row in t.values() for v in row.values() if v not in (None, 0))
    diff = sum(1 for key, t in ora.items() for k, row in t.items() for m, v in row.items() if alt[key][k].get(m) != v)
    print(f"  oracle cells non-zero: {nz}; cells where the alternative readings differ: {diff}")


READINGS = {
    "T1": "SPEC 5.1 'during a period': person counted when a service with code c is active on >=1 day of P; age = 2024 - birth year; distinct persons per cell",
    "T2": "SPEC 5.1 status on D: active on 2024-12-31 (start<=D, D<=min(end,valid_to,death), not in pause, latest decision GRANTED)",
    "T3": "SPEC 5.2/5.4: hours on D = in-force decision hours overridden by latest hours change (eff<=D; same date: later log order); summed over all active services",
    "T4": "SPEC 5.1/5.2: active days (end day included, pauses [pause,resume) excluded) within 2024, per code",
    "I1": "persons 80+ with 21 on D / population 80+ on 1.1.2025 (ratio)",
    "I2": "persons 80+ with any of INSTITUTION={8,18,19,20,21} on D / pop 80+",
    "I3": "persons 80+ with any of HOME on D / pop 80+",
    "I4": "persons with any code of the 'group' column on D, per band / band population (both sexes, 1.1.2025) * 1000",
    "I5": "sum of hours on code 15 on D / persons with 15 on D",
    "I6": "sum over persons of hours over HOURS_TOTAL on D / persons with any HOURS_TOTAL on D",
    "I7": "persons with HOME hours sum on D > 35.5 / persons with HOME on D",
    "I8": "need level from latest assessment <= D (any municipality); EXTENSIVE if personal-care or social/cognitive mean >= 3.5, UNKNOWN if < 8 valid of 15",
    "I9": "persons 80+ with any SHORT active in P / pop 80+ * 1000",
    "I10": "code-21 residents on D with a PHYSICIAN check in (D-365, D], any municipality",
    "I11": "code-21 residents 67+ on D with MEDICATION_REVIEW in (D-365, D]",
    "I12": "residents 67+ screened in window; at-risk/plan from latest screening in window",
    "I13": "code-21 residents on D with DENTAL check in window",
    "I14": "persons with any service active in 2024 by band x sex / population 1.1.2025 (ratio)",
    "I15": "every decision (GRANTED/REFUSED) dated in 2024 of a service with an application: decision_date - application_date; nearest rank",
    "I16": "starts in 2024: start - in-force decision date; not started: persons alive on D with granted decision <= D and no start <= D",
    "I17": "waiting on D per municipality: entry <= D, no code-21 start in [entry, D], alive on D; median over code-21 starts in 2024 with an open entry (earliest open entry)",
    "I18": "code-19 stays (services) with ServiceEnded dated in 2024; numerator reason not DIED/TO_INSTITUTION",
}
ALT_READINGS = {
    "I15": "alternative: only the in-force (latest) decision of each service counts",
    "I17": "alternative: 'oppstarter' counts all code-21 starts in P, not only those after a waiting-list entry",
    "I18": "alternative: persons instead of stays",
}
FIGS = ["T1", "T2", "T3", "T4"] + [f"I{i}" for i in range(1, 19)]
KEYCOLS = ["Tjeneste", "Alder", "Kjonn", "Gruppe"]


def num(v):
    if v is None or v == "":
        return None
    return float(v)


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=20241231)
    ap.add_argument("--persons", type=int, default=400)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    binary = Path(os.environ.get("KPR_BIN", REPO / "target" / "debug" / "kpr"))
    if not binary.is_file():
        sys.exit(f"binary missing: {binary} (cargo build -p kpr)")
    work = Path(tempfile.mkdtemp(prefix="kpr-oracle-"))
    (work / "stubs").mkdir()
    load_stubs(work / "stubs")

    gen = Gen(args.seed, args.persons)
    gen.build()
    n_events = len(gen.all_events)
    server = Server(binary, work)
    server.start()
    try:
        sent = send(server, gen)
        print(f"sent {sent} events ({n_events} generated) for {len(gen.persons)} persons", flush=True)
        model = Model(gen)
        pop = load_population(YEAR + 1)
        ora = compute(model, pop)
        alt = compute(model, pop, alt=True)
        print_coverage(gen, model, ora, alt)
        compared = matched = 0
        fails, ambiguous = [], []
        pop_years = set()
        for fig in FIGS:
            for reg in REGIONS:
                rows, hdr = server.table(fig, reg)
                if hdr.get("x-kpr-population-year"):
                    pop_years.add(hdr["x-kpr-population-year"])
                cols = list(rows[0].keys()) if rows else []
                kc = [c for c in KEYCOLS if c in cols]
                mc = [c for c in cols if c not in kc and c not in ("Region", "Tid")]
                o = ora[(fig, reg)]
                a = alt[(fig, reg)]
                seen = set()
                for row in rows:
                    key = tuple(row[c] for c in kc)
                    seen.add(key)
                    if row["Region"] != reg:
                        fails.append((fig, reg, key, "Region", reg, row["Region"], "region column"))
                    if key not in o:
                        fails.append((fig, reg, key, "-", "(no such cell in oracle)", dict(row), READINGS[fig]))
                        continue
                    for m in mc:
                        compared += 1
                        ov = o[key].get(m, "MISSING")
                        rv = num(row[m])
                        if ov == "MISSING":
                            fails.append((fig, reg, key, m, "(measure unknown to oracle)", row[m], READINGS[fig]))
                            continue
                        ov = None if ov is None else float(ov)
                        if same(ov, rv):
                            matched += 1
                        else:
                            av = a[key].get(m)
                            av = None if av is None else float(av)
                            if fig in ALT_READINGS and same(av, rv):
                                ambiguous.append((fig, reg, key, m, ov, row[m], ALT_READINGS[fig]))
                            else:
                                fails.append((fig, reg, key, m, ov, row[m], READINGS[fig]))
                for key in o:
                    if key not in seen:
                        fails.append((fig, reg, key, "-", o[key], "(row missing in register)", READINGS[fig]))
        print(f"\npopulation year used by register: {sorted(pop_years)} (oracle: {YEAR + 1})")
        print(f"cells compared: {compared}, matching: {matched}, mismatching: {len(fails)}, "
              f"ambiguous (register matches an alternative reading): {len(ambiguous)}")
        for title, lst in (("MISMATCHES", fails), ("AMBIGUOUS", ambiguous)):
            if not lst:
                continue
            print(f"\n{title}")
            byfig = defaultdict(list)
            for f in lst:
                byfig[f[0]].append(f)
            for fig, fl in byfig.items():
                print(f"  {fig}: {len(fl)} cells. Reading: {fl[0][6]}")
                for f in fl[:40]:
                    print(f"    {f[1]:5} {'/'.join(f[2]) or '-':28} {f[3]:14} oracle={f[4]!s:24} register={f[5]}")
                if len(fl) > 40:
                    print(f"    ... {len(fl) - 40} more")
        rc = server.stop()
        if rc != 0:
            print(f"server exit code after SIGTERM: {rc}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
        sys.exit(1 if fails else 0)
    finally:
        server.kill()


if __name__ == "__main__":
    main()
