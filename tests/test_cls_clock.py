"""The classifier's members follow the wall clock (`MemberBudget` + `CycleClock`): a load spike during one member
shortens the steps of the cycle it falls in, not that member's share of the budget, nor the shares of the members after
it.
These run on a fake clock (deterministic); `tools/bench_cls_clock.py` measures real members next to a CPU burner
that stops and starts (a benchmark: timings are quoted, never asserted)."""
from types import SimpleNamespace

import numpy as np
import pytest
from fastai.callback.core import Callback
from fastai.test_utils import synth_learner

import lesion_fastai.learner.clock as clock_mod
import lesion_fastai.cls.train as train_mod
from lesion_fastai.config import ClassifyConfig
from lesion_fastai.cls.train import MemberBudget
import lesion_fastai.cls.learner                        # patches in Learner.fit_snapshots


class FakeTime:
    "A clock that only moves when told to"
    def __init__(self, t=1_000.): self.t = t
    def time(self): return self.t
    perf_counter = time


class Tick(Callback):
    "Every batch costs `dt` fake seconds (validation a quarter of it); `spike` of them cost `factor` times more"
    order = -50                                          # before the clock reads the time
    def __init__(self, fake, dt=1., spike=0, factor=1.):
        self.fake, self.dt, self.spike, self.factor = fake, dt, spike, factor
    def after_batch(self):
        slow = self.spike > 0
        if self.training: self.spike -= 1
        self.fake.t += (self.dt if self.training else self.dt/4)*(self.factor if slow else 1.)


@pytest.fixture
def fake(monkeypatch):
    f = FakeTime()
    monkeypatch.setattr(clock_mod, 'time', SimpleNamespace(time=f.time, perf_counter=f.perf_counter))
    monkeypatch.setattr(train_mod, 'time', SimpleNamespace(time=f.time, perf_counter=f.perf_counter))
    return f


def _members(fake, tmp_path, spikes, minutes=3., n_predict=0):
    "Train `len(spikes)` members of 2 cycles by their clocks; member i's first `spikes[i]` batches are 10× slower"
    budget = MemberBudget(minutes, len(spikes), n_predict, started=fake.t, log=[].append)
    cfg = ClassifyConfig(full_cycles=2, input='full', keep=1)
    out = []
    for i, s in enumerate(spikes):
        learn = synth_learner(n_trn=10, n_val=2)            # 10 training and 2 validation batches of 16
        learn.pretrained = False
        t0 = fake.t
        clock = budget.clock(learn, cfg, f'fold{i}', t0)
        with learn.no_bar(), learn.no_logging():
            learn.fit_snapshots(2, 1, 1e-3, tmp_path/f'fold{i}', cbs=[Tick(fake, spike=s, factor=10.)], clock=clock)
        rec = budget.done(f'fold{i}', (fake.t - t0)/60)['clock']
        out.append(dict(seconds=fake.t - t0, epochs=rec['epochs'], share=rec['share_minutes'], cycles=rec['cycles'],
                        snaps=learn.snapshot_scores))
    return out, fake.t - budget.started


def test_spike_does_not_move_shares(fake, tmp_path):
    "A spike in member 0 (its first 20 batches 10× slower) leaves every member's share at a third of the budget"
    quiet, total_q = _members(fake, tmp_path/'q', [0, 0, 0])
    fake.t += 10_000
    spiked, total_s = _members(fake, tmp_path/'s', [20, 0, 0])
    for q, s in zip(quiet, spiked):
        assert s['share'] == pytest.approx(1., abs=0.02) and q['share'] == pytest.approx(1., abs=0.02)   # 60 of 180 s
        assert s['seconds'] == pytest.approx(60, abs=11) and len(s['snaps']) == 2     # a snapshot at each cycle's end
    assert total_q <= 180 + 11 and total_s <= 180 + 11                                # the budget, give or take a batch
    assert spiked[0]['epochs'] < quiet[0]['epochs']                             # the spike costs member 0 steps…
    assert [s['epochs'] for s in spiked[1:]] == pytest.approx([q['epochs'] for q in quiet[1:]], abs=0.2)  # not others


def test_cycles_share_what_is_left(fake, tmp_path):
    "A spike in a member's first cycle shortens that cycle's steps; its second cycle still gets half the member's share"
    (quiet,), _ = _members(fake, tmp_path/'q', [0], minutes=1.)
    fake.t += 10_000
    (spiked,), _ = _members(fake, tmp_path/'s', [3], minutes=1.)      # its first 3 batches take 30 s
    assert [c['seconds'] for c in spiked['cycles']] == pytest.approx([30, 30], abs=11)
    assert spiked['cycles'][0]['epochs'] < quiet['cycles'][0]['epochs']
    assert spiked['cycles'][1]['epochs'] == pytest.approx(quiet['cycles'][1]['epochs'], abs=0.2)


def test_set_aside_from_timed_validation(fake, tmp_path):
    "The out-of-fold prediction is priced from the validations the clocks timed, and taken from the members' shares"
    out, total = _members(fake, tmp_path, [0, 0], minutes=2., n_predict=100)
    assert out[0]['share'] < 1. and out[1]['share'] < 1.                        # less than half of 2 minutes each
    assert total < 120                                                          # the prediction's time left over
