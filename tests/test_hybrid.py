"Nothing leaks into the hybrid: with shuffled labels every variant scores chance out of fold; with the true ones it learns."
import numpy as np, pandas as pd, pytest
from lesion_fastai.io import find_isic_dev, list_images, list_masks
from lesion_fastai.cls.features import feature_table
from lesion_fastai.cls.hybrid import fit_hybrid
from lesion_fastai.config import VARIANTS


def _synthetic(n=420, seed=0):
    "Features and an out-of-fold CNN that both carry the true class"
    rng = np.random.default_rng(seed)
    ids = [f'img{i}' for i in range(n)]
    mel = rng.uniform(size=n) < 0.25
    feats = pd.DataFrame(rng.normal(size=(n, 12)), index=ids); feats[0] += 1.5*mel; feats[1] -= mel
    p = 1/(1 + np.exp(-(2*mel - 1 + rng.normal(size=n))))
    return feats, pd.DataFrame({'MEL': p, 'NV': 1 - p}, index=ids), pd.Series(np.where(mel, 'MEL', 'NV'), index=ids), pd.Series(np.arange(n) % 3, index=ids)


def _shuffled_scores(feats, cnn, labels, folds, n=5):
    rng = np.random.default_rng(1)
    runs = [fit_hybrid(feats, cnn, pd.Series(rng.permutation(labels.to_numpy()), index=labels.index), folds, ['MEL', 'NV']).scores for _ in range(n)]
    return {v: np.mean([r[v]['balanced_accuracy'] for r in runs]) for v in VARIANTS}


def test_hybrid_learns_true_labels():
    h = fit_hybrid(*_synthetic(), ['MEL', 'NV'])
    for v in VARIANTS: assert h.scores[v]['balanced_accuracy'] > 0.68, (v, h.scores[v])     # features 0.73, cnn 0.82


def test_shuffled_labels_give_chance():
    "An image's own (shuffled) label never reaches its prediction: no stage scores what it was fitted on"
    for v, ba in _shuffled_scores(*_synthetic()).items(): assert abs(ba - 0.5) < 0.05, (v, ba)


@pytest.mark.skipif(find_isic_dev() is None, reason='isic-dev not available')
def test_shuffled_labels_isic_dev():
    "The same on real dermoscopic features of 90 isic-dev images (their expert masks) and a random CNN"
    d = find_isic_dev()
    lab = pd.read_csv(d/'labels.csv').set_index('image_id').dx_mapped.iloc[:90]
    feats = feature_table({i: list_images(d/'images')[i] for i in lab.index}, list_masks(d/'masks'))
    rng = np.random.default_rng(0); p = rng.uniform(size=len(lab))
    cnn = pd.DataFrame({'MEL': p, 'NV': 1 - p}, index=lab.index)
    for v, ba in _shuffled_scores(feats, cnn, lab, pd.Series(np.arange(len(lab)) % 3, index=lab.index)).items():
        assert abs(ba - 0.5) < 0.1, (v, ba)           # 5 permutations of 90 images: sd about 0.03


def test_three_classes():
    "Task 3 has seven classes: the stack, the operating point and prediction work for more than two"
    from lesion_fastai.cls.hybrid import predict_hybrid, hybrid_report
    rng = np.random.default_rng(2); n = 300; ids = [f'i{i}' for i in range(n)]
    y = rng.integers(0, 3, n); classes = ['MEL', 'NV', 'BKL']
    feats = pd.DataFrame(rng.normal(size=(n, 8)), index=ids); feats[0] += y == 0; feats[1] += y == 2
    p = rng.dirichlet(np.ones(3), n)*0.5 + np.eye(3)[y]*0.5
    h = fit_hybrid(feats, pd.DataFrame(p, index=ids, columns=classes), pd.Series(np.array(classes)[y], index=ids),
                   pd.Series(np.arange(n) % 3, index=ids), classes)
    assert h.scores['hybrid']['balanced_accuracy'] > 0.6 and h.scores['hybrid']['operating_sensitivity'] >= 0.8
    probs, members = predict_hybrid(h, feats, [p, p], 'hybrid')
    rep = hybrid_report(h, probs, members, 'hybrid')
    assert probs.shape == (n, 3) and list(rep.columns[:5]) == ['pred', 'prob', 'p_MEL', 'p_NV', 'p_BKL'] and 'MEL_flag' in rep
