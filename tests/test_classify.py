"The crop-then-classify series from the command line: classify-train, classify-predict, classify-evaluate, and bad label CSVs."
import json, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from lesion_fastai.demo import demo_set
from lesion_fastai.learner.card import card

EXE = str(Path(sys.executable).with_name('lesion_fastai'))

def _run(*args, **kw):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, **kw)

@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    "24 demo images labelled 'dark' or 'light' by the mean grey level inside their lesion (something a CNN can learn)"
    src, t = demo_set(n=24), tmp_path_factory.mktemp('cls')
    ids = sorted(p.stem for p in (src/'images').iterdir())
    grey = [np.asarray(Image.open(src/'images'/f'{i}.jpg').convert('L'))[np.asarray(Image.open(src/'masks'/f'{i}_segmentation.png')) > 0].mean()
            for i in ids]
    med = np.median(grey)
    pd.DataFrame({'image_id': ids, 'dx': ['dark' if g < med else 'light' for g in grey]}).to_csv(t/'labels.csv', index=False)
    return src, t

SMALL = ['--size', 64, '--full-cycles', 1, '--crop-cycles', 1, '--cycle-len', 1, '--keep', 1, '--bs', 8, '--pretrained', 'none']

def test_train_predict_evaluate(demo):
    "KFoldCrop from the CLI; its predictions are an official Task 3 CSV that classify-evaluate scores like the report"
    src, t = demo
    res = _run('classify-train', '--images', src/'images', '--labels', t/'labels.csv', '--masks', src/'masks',
               '--out', t/'kfc', '--folds', 2, *SMALL)
    assert res.returncode == 0, res.stderr
    assert 'out of fold (24 images, 8-way TTA): balanced accuracy' in res.stdout
    man = json.loads((t/'kfc'/'classifier.json').read_text())
    assert len(man['members']) == 2 and man['classes'] == ['dark', 'light']
    assert (t/'kfc'/'oof.csv').exists() and (t/'kfc'/'confusion.png').exists()
    c, text = card(t/'kfc'), (t/'kfc'/'README.md').read_text()                  # the model card
    ba = c['validation']['scores']['balanced_accuracy']
    assert c['kind'] == 'classifier' and abs(ba['value'] - man['valid']['balanced_accuracy']) < 1e-6
    assert ba['low'] <= ba['value'] <= ba['high'] and set(c['validation']['per_class']) == {'dark', 'light'}
    assert c['data']['n_images'] == 24 and c['data']['class_counts'] == man['class_counts']
    assert '| balanced accuracy |' in text and 'It knows only the classes dark, light' in text
    assert 'Not a medical device.' in text
    again = _run('classify-train', '--images', src/'images', '--labels', t/'labels.csv', '--masks', src/'masks',
                 '--out', t/'kfc', '--folds', 2, *SMALL)
    assert again.returncode == 2 and 'holds a finished classifier; train it again from scratch with --restart' in again.stderr, again.stderr  # no silent retrain
    assert json.loads((t/'kfc'/'classifier.json').read_text()) == man                  # …and the finished folder is untouched
    pred = _run('classify-predict', '--model', t/'kfc', '--images', src/'images', '--masks', src/'masks', '--out', t/'pred',
                '--truth', t/'labels.csv')
    assert pred.returncode == 0, pred.stderr
    assert '24 images classified' in pred.stdout and 'balanced accuracy' in pred.stdout
    sub = pd.read_csv(t/'pred'/'predictions.csv')
    assert list(sub.columns) == ['image', 'dark', 'light'] and len(sub) == 24
    assert np.allclose(sub[['dark', 'light']].sum(1), 1, atol=1e-6)
    truth = pd.read_csv(t/'labels.csv')
    onehot = pd.DataFrame({'image': truth.image_id, 'dark': (truth.dx == 'dark')*1., 'light': (truth.dx == 'light')*1.})
    onehot.to_csv(t/'truth.csv', index=False)
    ev = _run('classify-evaluate', '--truth', t/'truth.csv', '--pred', t/'pred'/'predictions.csv', '--json')
    assert ev.returncode == 0, ev.stderr
    scores = json.loads((t/'pred'/'scores.json').read_text())
    assert abs(json.loads(ev.stdout)['balanced_accuracy'] - scores['balanced_accuracy']) < 1e-12
    refuse = _run('classify-predict', '--model', t/'kfc', '--images', src/'images', '--masks', src/'masks', '--out', t/'pred')
    assert refuse.returncode == 2 and 'already holds predictions' in refuse.stderr
    # the hybrid: fitted by classify-train, the default of classify-predict, its report readable by a clinician
    assert (t/'kfc'/'hybrid.pkl').exists() and (t/'kfc'/'reliability.png').exists() and 'hybrid' in man
    assert f"by the {man['hybrid']['default']} variant" in pred.stdout and 'expected calibration error' in pred.stdout   # the best out of fold
    rep = pd.read_csv(t/'pred'/'report.csv')
    assert {'pred', 'prob', 'p_dark', 'p_light', 'uncertainty', 'members_disagree', 'variant'} <= set(rep.columns)
    assert 'ece' in scores and (t/'pred'/'reliability.png').exists()
    feats = _run('classify-predict', '--model', t/'kfc', '--images', src/'images', '--masks', src/'masks', '--out', t/'pred_f',
                 '--variant', 'features')
    assert feats.returncode == 0 and 'by the features variant' in feats.stdout, feats.stderr
    bad = _run('classify-predict', '--model', t/'kfc', '--images', src/'images', '--masks', src/'masks', '--out', t/'pred_x', '--variant', 'knn')
    assert bad.returncode == 2 and "invalid choice: 'knn'" in bad.stderr

@pytest.mark.parametrize('rows,message', [
    ("image_id,dx\n{a},NV\nISIC_9999999,MEL\n", "line 3: image ISIC_9999999 is not in"),
    ("image_id,dx\n{a},NV\n{b},MEL\n{a},NV\n", "image {a} is listed more than once (line 2, line 4)"),
    ("image,MEL,NV\n{a},0,1\n{b},1,1\n", "line 3 (image {b}): not one-hot (MEL=1, NV=1)"),
    ("image,MEL,NV,SCC\n{a},0,1,0\n", "line 1: unknown class column(s) 'SCC'"),
    ("image_id,dx\n{a},NV\n{b},SCC\n", "line 3 (image {b}): unknown class 'SCC'"),
])
def test_bad_labels(demo, tmp_path, rows, message):
    "A bad label CSV stops classify-train with one line naming the file and the row; nothing is written"
    src, _ = demo
    a, b = sorted(p.stem for p in (src/'images').iterdir())[:2]
    (tmp_path/'bad.csv').write_text(rows.format(a=a, b=b))
    extra = ['--classes', 'MEL', 'NV'] if 'SCC' in rows and 'dx' in rows else []
    res = _run('classify-train', '--images', src/'images', '--labels', tmp_path/'bad.csv', '--masks', src/'masks',
               '--out', tmp_path/'out', *extra, *SMALL)
    assert res.returncode == 2, res.stderr
    assert 'Traceback' not in res.stderr and str(tmp_path/'bad.csv') in res.stderr
    assert message.format(a=a, b=b) in res.stderr, res.stderr
    assert not (tmp_path/'out').exists()

def test_budget(demo, tmp_path):
    "`--minutes`: each member follows a clock to its share of the budget left and logs its share, its epochs and its time"
    import re
    from lesion_fastai.cls.train import train_classifier
    src, t = demo
    assert '--minutes MINUTES' in _run('classify-train', '--help').stdout
    lines, out = [], tmp_path/'cls'
    kw = dict(masks=src/'masks', folds=2, cache=tmp_path/'cache', size=32, bs=8, keep=1, pretrained=False, progress=False)
    train_classifier(src/'images', t/'labels.csv', out, minutes=0.6, log=lines.append, **kw)
    shares = [l for l in lines if re.fullmatch(r"member fold\d \(\d of 2\): 8 cycles by the clock, "
                                               r"-?[\d.]+ of the -?[\d.]+ minutes left", l)]
    done = [l for l in lines if re.fullmatch(r"member fold\d: [\d.]+ epochs in [\d.]+ min \(its share -?[\d.]+\)", l)]
    assert (len(shares), len(done)) == (2, 2), lines
    assert shares[0].startswith('member fold0 (1 of 2)') and shares[1].startswith('member fold1 (2 of 2)')
    assert sum('cycles by the clock, lr' in l for l in lines) == 4, lines    # both stages of both members
    man = json.loads((out/'classifier.json').read_text())
    assert man['budget_minutes'] == 0.6 and man['train_minutes'] > 0
    member = json.loads((out/'fold1'/'config.json').read_text())
    assert member['train_config']['minutes'] == 0.6 and member['train_config']['cycle_len'] == 6   # the user's settings…
    clock = member['clock']                                                                       # …and the clock's
    assert len(clock['cycles']) == 8 and clock['epochs'] > 0 and member['minutes'] > 0   # (its share: < 0 on a busy machine)
    assert all(c['epochs'] > 0 and c['seconds'] > 0 and c['valid_secs'] > 0 for c in clock['cycles'])
    assert member['snapshots'] == {'crop': ['crop3.pth']}                       # a snapshot at every cycle's end, one kept
    again = []                                                      # another budget: the finished members are kept
    train_classifier(src/'images', t/'labels.csv', out, minutes=5, log=again.append, **kw)
    assert sum('finished member' in l for l in again) == 2 and not any(l.startswith('member fold') for l in again), again
