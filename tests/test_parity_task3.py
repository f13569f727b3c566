"""Parity of the Task 3 (classification) scores of `lesion_fastai.metrics` with the official scorer
(`isic_challenge_scoring.classification`) on the same CSV files: balanced accuracy and every per-class score we report,
to 1e-9, with tied rows, probabilities of exactly 0.5, classes with a single true row and score weights."""
import numpy as np
import pandas as pd
import pytest

from lesion_fastai.metrics import score_task3, CLASS_METRICS
from lesion_fastai.cls.labels import ISIC_CLASSES
from lesion_fastai.cls.predict import task3_csv

scoring = pytest.importorskip('isic_challenge_scoring.classification', reason='isic-challenge-scoring is not installed')

@pytest.fixture(autouse=True)
def _pandas3_applymap(monkeypatch):
    "isic-challenge-scoring 5.6 calls `DataFrame.applymap`, which pandas 3 removed; `DataFrame.map` is the same method renamed"
    if not hasattr(pd.DataFrame, 'applymap'): monkeypatch.setattr(pd.DataFrame, 'applymap', pd.DataFrame.map, raising=False)


def _case(tmp_path, classes, n, seed, weights=False, rare=()):
    "Truth and prediction CSVs with ties, 0.5s and near-ties; returns their paths"
    rng = np.random.default_rng(seed)
    present = [c for c in classes if c not in rare]
    y = rng.choice(len(present), n, p=np.linspace(3, 1, len(present))/np.linspace(3, 1, len(present)).sum())
    truth = pd.DataFrame(0., index=[f'ISIC_{i:07d}' for i in range(n)], columns=list(classes))
    for i, c in enumerate(y): truth.iloc[i, classes.index(present[c])] = 1.
    for j, c in enumerate(rare): truth.iloc[10 + j] = 0.; truth.loc[truth.index[10 + j], c] = 1.  # a single true row each
    logits = rng.normal(0, 1.5, (n, len(classes))) + 2*truth.to_numpy()       # informative but imperfect
    probs = np.exp(logits)/np.exp(logits).sum(1, keepdims=True)
    probs[0] = 1/len(classes)                                              # every class tied
    probs[1, :] = 0; probs[1, :2] = 0.5                                      # two-way tie at exactly 0.5
    probs[2, :] = 0; probs[2, 0] = 0.5; probs[2, 1:] = 0.5/(len(classes) - 1) # 0.5: not > 0.5 for the per-class scores
    probs[3] = probs[4]                                                      # identical rows (ties in the ROC)
    probs = np.round(probs, 6)
    t = truth.reset_index(names='image')
    if weights: t['score_weight'] = rng.choice([0., 1., 1., 2.5], n)
    t.to_csv(tmp_path/'truth.csv', index=False)
    task3_csv([f'{i}.jpg' if j % 3 == 0 else i for j, i in enumerate(truth.index)], probs, classes, tmp_path/'pred.csv')
    return tmp_path/'truth.csv', tmp_path/'pred.csv'


@pytest.mark.parametrize('classes,n,seed,weights,rare', [
    (['MEL', 'NV'], 436, 0, False, ()),                   # isic-dev's two classes
    (list(ISIC_CLASSES), 500, 1, False, ()),               # the ISIC 2018 seven
    (list(ISIC_CLASSES), 300, 2, True, ()),                # with score weights
    (list(ISIC_CLASSES), 200, 3, False, ('DF', 'VASC')),   # classes with a single true row (the official scorer fails on none)
])
def test_task3_parity(tmp_path, classes, n, seed, weights, rare):
    truth, pred = _case(tmp_path, classes, n, seed, weights, rare)
    official = scoring.ClassificationScore.from_file(truth, pred, scoring.ClassificationMetric.BALANCED_ACCURACY)
    ours = score_task3(truth, pred)
    assert abs(official.aggregate['balanced_accuracy'] - ours['balanced_accuracy']) < 1e-9
    assert ours['n_images'] == n and ours['classes'] == classes
    per = official.per_category.set_index(official.per_category.index if 'MEL' in official.per_category.index else pd.Index(classes))
    for c in classes:
        for k in CLASS_METRICS:
            assert abs(per.loc[c, k] - ours['per_class'].loc[c, k]) < 1e-9, (c, k, per.loc[c, k], ours['per_class'].loc[c, k])


def test_tie_row_counts_as_wrong(tmp_path):
    "A row whose two largest probabilities are equal is wrong for both scorers, whatever its true class"
    pd.DataFrame({'image': ['a', 'b', 'c', 'd'], 'MEL': [1., 1., 0., 0.], 'NV': [0., 0., 1., 1.]}).to_csv(tmp_path/'t.csv', index=False)
    task3_csv(['a', 'b', 'c', 'd'], np.array([[.9, .1], [.5, .5], [.2, .8], [.3, .7]]), ['MEL', 'NV'], tmp_path/'p.csv')
    official = scoring.ClassificationScore.from_file(tmp_path/'t.csv', tmp_path/'p.csv', scoring.ClassificationMetric.BALANCED_ACCURACY)
    assert score_task3(tmp_path/'t.csv', tmp_path/'p.csv')['balanced_accuracy'] == official.aggregate['balanced_accuracy'] == 0.75


def _refusal_case(tmp_path, kind):
    "Truth (MEL/NV) and a prediction the official scorer refuses: `kind` 'int', 'bool', 'score_weight', 'validation_weight'"
    ids = [f'ISIC_{i:07d}' for i in range(6)]
    pd.DataFrame({'image': ids, 'MEL': [1., 1, 1, 0, 0, 0], 'NV': [0., 0, 0, 1, 1, 1]}).to_csv(tmp_path/'t.csv', index=False)
    pred = pd.DataFrame({'image': ids, 'MEL': [.9, .8, .3, .2, .1, .4], 'NV': [.1, .2, .7, .8, .9, .6]})
    if kind == 'int': pred[['MEL', 'NV']] = pred[['MEL', 'NV']].round().astype(int)  # 1 and 0: read as int64
    if kind == 'bool': pred[['MEL', 'NV']] = pred[['MEL', 'NV']] > .5                 # True/False: read as bool
    if kind.endswith('_weight'): pred[kind] = 5.                                    # would win every arg-max
    pred.to_csv(tmp_path/'p.csv', index=False)
    return tmp_path/'t.csv', tmp_path/'p.csv'


@pytest.mark.parametrize('kind,official_says,we_say', [
    ('int', 'non-floating-point', "integer or True/False values in columns ['MEL', 'NV']"),
    ('bool', 'non-floating-point', "integer or True/False values in columns ['MEL', 'NV']"),
    ('score_weight', "Extra columns in CSV: ['score_weight']", "extra columns ['score_weight']"),
    ('validation_weight', "Extra columns in CSV: ['validation_weight']", "extra columns ['validation_weight']"),
])
def test_task3_refusal_parity(tmp_path, kind, official_says, we_say):
    "Predictions the official scorer refuses (hidden corpus #2–5): refused here too, by the library and the CLI (exit 2)"
    import re, subprocess, sys
    from pathlib import Path
    from lesion_fastai.config import LesionDataError
    truth, pred = _refusal_case(tmp_path, kind)
    from isic_challenge_scoring.types import ScoreError
    with pytest.raises(ScoreError, match=re.escape(official_says)):
        scoring.ClassificationScore.from_file(truth, pred, scoring.ClassificationMetric.BALANCED_ACCURACY)
    with pytest.raises(LesionDataError, match='^' + re.escape(f'{pred}: ')):
        score_task3(truth, pred)
    exe = str(Path(sys.executable).with_name('lesion_fastai'))
    res = subprocess.run([exe, 'classify-evaluate', '--truth', str(truth), '--pred', str(pred)], capture_output=True, text=True)
    assert res.returncode == 2 and 'Traceback' not in res.stderr and 'balanced accuracy' not in res.stdout, res
    assert len(res.stderr.strip().splitlines()) == 1 and str(pred) in res.stderr and we_say in res.stderr, res.stderr


def test_task3_float_text_and_truth_weights_still_score(tmp_path):
    "Whole numbers written as floats (1.0) are floats to both scorers; `score_weight` in the truth file still weighs"
    truth, pred = _refusal_case(tmp_path, 'int')
    p = pd.read_csv(pred)
    p[['MEL', 'NV']] = p[['MEL', 'NV']].astype(float)                        # written 1.0 / 0.0
    p.to_csv(pred, index=False)
    t = pd.read_csv(truth)
    t['score_weight'] = [1., 1, 1, 1, 1, 0]
    t.to_csv(truth, index=False)
    official = scoring.ClassificationScore.from_file(truth, pred, scoring.ClassificationMetric.BALANCED_ACCURACY)
    assert score_task3(truth, pred)['balanced_accuracy'] == official.aggregate['balanced_accuracy']
