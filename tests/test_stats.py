"""The intervals `evaluate --ci`, `evaluate --compare` and `classify-evaluate --ci/--compare` print are
`scipy.stats.bootstrap`'s own, to 1e-9, on the same per-image scores and seed."""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lesion_fastai.data import save_mask
from lesion_fastai.metrics import score_folders, score_task3
from lesion_fastai.stats import BOOTSTRAP

CLI = [sys.executable, '-m', 'lesion_fastai.cli']


def run_json(*args)->dict:
    "Run a command with --json and read its output"
    r = subprocess.run(CLI + list(args) + ['--json'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def direct(statistic, *samples, paired=False)->tuple:
    "The interval of a direct `scipy.stats.bootstrap` call with the library's settings and seed 0"
    ci = stats.bootstrap(samples, statistic, paired=paired, random_state=np.random.default_rng(0), **BOOTSTRAP)
    return ci.confidence_interval.low, ci.confidence_interval.high


def square_mask(rng, n=24):
    "A random rectangle on an n×n image"
    m = np.zeros((n, n), np.uint8)
    y, x = rng.integers(0, n//2, 2)
    h, w = rng.integers(3, n//2, 2)
    m[y:y + h, x:x + w] = 1
    return m


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    "30 truth masks, two folders of noisy predictions of them, and a groups file"
    d, rng = tmp_path_factory.mktemp('eval'), np.random.default_rng(0)
    for i in range(30):
        t = square_mask(rng)
        save_mask(t, d/'truth'/f'img{i:02d}_segmentation.png')
        for name, flips in (('a', 40), ('b', 20)):
            p = t.copy()
            p.flat[rng.integers(0, p.size, rng.integers(0, flips))] ^= 1
            save_mask(p, d/name/f'img{i:02d}_segmentation.png')
    pd.DataFrame({'image_id': [f'img{i:02d}' for i in range(30)], 'group': ['x', 'y', 'z']*10}).to_csv(d/'groups.csv', index=False)
    return d


def test_evaluate_ci_is_scipys(folders):
    out = run_json('evaluate', '--truth', str(folders/'truth'), '--pred', str(folders/'a'), '--ci')
    per_image = score_folders(folders/'truth', folders/'a')
    for metric in ('threshold_jaccard', 'jaccard', 'dice'):
        low, high = direct(np.mean, per_image[metric].to_numpy())
        r = out['intervals']['all'][metric]
        np.testing.assert_allclose([r['low'], r['high']], [low, high], atol=1e-9)


def test_evaluate_compare_is_scipys_paired(folders):
    out = run_json('evaluate', '--truth', str(folders/'truth'), '--pred', str(folders/'a'), '--compare', str(folders/'b'),
                   '--groups', str(folders/'groups.csv'))
    a = score_folders(folders/'truth', folders/'a').threshold_jaccard
    b = score_folders(folders/'truth', folders/'b').threshold_jaccard
    rows = {r['group']: r for r in out['comparison']}
    assert list(rows) == ['all', 'x', 'y', 'z']
    low, high = direct(lambda x, y, axis: (x - y).mean(axis), b.to_numpy(), a.to_numpy(), paired=True)
    np.testing.assert_allclose([rows['all']['low'], rows['all']['high']], [low, high], atol=1e-9)
    assert rows['all']['wins'] + rows['all']['ties'] + rows['all']['losses'] == 30
    x = a.index[::3]
    low, high = direct(lambda p, q, axis: (p - q).mean(axis), b[x].to_numpy(), a[x].to_numpy(), paired=True)
    np.testing.assert_allclose([rows['x']['low'], rows['x']['high']], [low, high], atol=1e-9)


@pytest.fixture(scope='module')
def task3(tmp_path_factory):
    "A three-class Task 3 truth file and two prediction files of 90 images"
    d, rng = tmp_path_factory.mktemp('task3'), np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 30)
    ids = [f'ISIC_{i:07d}' for i in range(90)]
    onehot = lambda lab: pd.DataFrame(np.eye(3)[lab], columns=['MEL', 'NV', 'BKL']).assign(image=ids)
    onehot(labels).to_csv(d/'truth.csv', index=False)
    for name, p in (('a', 0.6), ('b', 0.75)):
        guess = np.where(rng.uniform(size=90) < p, labels, rng.integers(0, 3, 90))
        onehot(guess).to_csv(d/f'{name}.csv', index=False)
    return d, labels


def test_classify_evaluate_ci_and_compare_are_scipys(task3):
    d, labels = task3
    out = run_json('classify-evaluate', '--truth', str(d/'truth.csv'), '--pred', str(d/'a.csv'), '--ci', '--compare', str(d/'b.csv'))
    pa = pd.read_csv(d/'a.csv')[['MEL', 'NV', 'BKL']].to_numpy()
    pb = pd.read_csv(d/'b.csv')[['MEL', 'NV', 'BKL']].to_numpy()
    ba = lambda lab, p: np.mean([(p[lab == c].argmax(1) == c).mean() for c in range(3)])
    assert out['balanced_accuracy'] == pytest.approx(score_task3(d/'truth.csv', d/'a.csv')['balanced_accuracy'], abs=1e-12)
    rows = np.arange(90, dtype=np.float64)
    low, high = direct(lambda i: ba(labels[i.astype(int)], pa[i.astype(int)]), rows)
    np.testing.assert_allclose(out['interval'], [low, high], atol=1e-9)
    low, high = direct(lambda i: ba(labels[i.astype(int)], pb[i.astype(int)]) - ba(labels[i.astype(int)], pa[i.astype(int)]), rows)
    np.testing.assert_allclose([out['comparison'][0]['low'], out['comparison'][0]['high']], [low, high], atol=1e-9)
