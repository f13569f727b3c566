"`lesion_fastai export CLASSIFIER`: networks, the hybrid as plain JSON, crops; classify-predict and serve on it, no pickle."
import json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')

from lesion_fastai.config import LesionDataError
from lesion_fastai.export import export_model, pipeline_json
from lesion_fastai.cls.portable import LogisticPipeline, PortableClassifier, classify_folder, load_classifier
from conftest import blocked_env

OLD = Path(__file__).parent/'fixtures'/'old_folders'
EXE = str(Path(sys.executable).with_name('lesion_fastai'))
MAX_DIFF = 1e-4          # exported (ONNX, fp32) against pickled (fastai in fp32) probabilities; measured ≈ 1e-7
pytestmark = pytest.mark.skipif(not (OLD/'VERSION').exists(), reason='fixtures not generated')

@pytest.fixture(autouse=True)
def fp32(monkeypatch):
    "The pickled classifier predicts in float32, the export's precision (bf16 autocast rounds on its own)"
    monkeypatch.setenv('LESION_FASTAI_PRECISION', 'fp32')

@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    "The fixture classifier (2 members, a hybrid whose default is the features variant) exported as ONNX"
    d = tmp_path_factory.mktemp('cls_export')/'cls'
    export_model(OLD/'classifier', d)
    return d

@pytest.mark.parametrize('k', [2, 3])
def test_pipeline_json_predicts_like_sklearn(k):
    "A `balanced_logistic` read back from its JSON gives scikit-learn's probabilities to 1e-9 (empty column, NaNs)"
    from lesion_fastai.cls.hybrid import balanced_logistic
    rng = np.random.default_rng(k)
    X, y = rng.normal(size=(80, 5)), np.arange(80) % k
    X[:, 3], X[::5, 1] = np.nan, np.nan
    pipe = balanced_logistic(0.3).fit(X, y)
    lp = LogisticPipeline(**json.loads(json.dumps(pipeline_json(pipe), allow_nan=False)))
    Xt = rng.normal(size=(40, 5))
    Xt[::3, 0] = np.nan
    assert np.abs(lp.predict_proba(Xt) - pipe.predict_proba(Xt)).max() <= 1e-9
    assert list(lp.classes_) == list(pipe.classes_)

def _strict(f:Path)->dict:
    "The JSON in `f`, refused when it holds NaN or infinity (not plain JSON)"
    return json.loads(f.read_text(), parse_constant=lambda c: pytest.fail(f"{f.name} holds {c}"))

def test_export_holds_no_pickle_and_says_everything(exported):
    files = sorted(str(p.relative_to(exported)) for p in exported.rglob('*') if p.is_file())
    assert files == ['contract.json', 'hybrid.json', 'member0/snapshot0.onnx', 'member1/snapshot0.onnx']
    c, h = _strict(exported/'contract.json'), _strict(exported/'hybrid.json')
    assert (c['kind'], c['engine'], c['classes'], c['tta'], c['tta_views']) == \
           ('classifier', 'onnx', ['dark', 'light'], True, list(range(8)))
    m = c['members'][0]
    assert (m['files'], m['size'], m['input'], m['resize'], m['resample']) == \
           (['member0/snapshot0.onnx'], 32, 'crop', 'squish', 'bilinear')
    assert c['crop']['settings']['margin'] == 0.1 and c['crop']['seg_model'] is None and 'given' in c['crop']['masks']
    assert c['source']['sha256']['hybrid.pkl'] and c['hybrid'] == 'hybrid.json'
    assert h['default'] == 'features' and h['prior'] == [0.5, 0.5] and len(h['columns']) == 76
    assert [f for f, _ in h['fold_models']] == [0, 1]
    assert set(h['stack']) == {'medians', 'mean', 'scale', 'coef', 'intercept', 'classes'}

def _classify(model, images, out, **kw)->pd.DataFrame:
    return classify_folder(model, images, out, masks=OLD/'data'/'masks', progress=False, log=lambda *a: None, **kw)

def _max_diff(a:Path, b:Path)->float:
    "The largest difference between two Task 3 CSVs' probabilities, refused unless their images and columns agree"
    x, y = pd.read_csv(a), pd.read_csv(b)
    assert list(x.columns) == list(y.columns) and list(x.image) == list(y.image)
    return float(np.abs(x.iloc[:, 1:].to_numpy() - y.iloc[:, 1:].to_numpy()).max())

@pytest.mark.parametrize('variant', ['hybrid', 'cnn', 'features'])
def test_export_predicts_like_the_pickled_classifier(exported, tmp_path, variant):
    "Each variant: the same report columns and decisions, probabilities within `MAX_DIFF`"
    images = OLD/'data'/'images'
    a, b = _classify(OLD/'classifier', images, tmp_path/'a', variant=variant), _classify(exported, images, tmp_path/'b', variant=variant)
    assert list(a.columns) == list(b.columns) and list(a.pred) == list(b.pred)
    diff = _max_diff(tmp_path/'a'/'predictions.csv', tmp_path/'b'/'predictions.csv')
    print(f"{variant}: largest probability difference, export against pickled classifier (fp32): {diff:.2e}")
    assert diff <= MAX_DIFF
    p = [f'p_{c}' for c in ('dark', 'light')]
    assert np.abs(a[p].to_numpy() - b[p].to_numpy()).max() <= MAX_DIFF
    assert (tmp_path/'a'/'report.csv').read_text().splitlines()[0] == (tmp_path/'b'/'report.csv').read_text().splitlines()[0]

def test_torchscript_export(exported, tmp_path):
    "A TorchScript export (its engine needs torch, no fastai, no pickle) gives the ONNX export's probabilities"
    from lesion_fastai.cls.crop import lesion_crops
    c = export_model(OLD/'classifier', tmp_path/'ts', format='torchscript')
    assert c['engine'] == 'torchscript' and (tmp_path/'ts'/'member1'/'snapshot0.pt').is_file()
    files = {f.stem: f for f in sorted((OLD/'data'/'images').iterdir())[:4]}
    tab = lesion_crops(files, masks=OLD/'data'/'masks', cache=tmp_path/'crops', progress=False, log=None)
    a, b = (PortableClassifier.load(d).member_probs(tab) for d in (exported, tmp_path/'ts'))
    assert np.abs(a - b).max() <= MAX_DIFF

def test_loaded_export(exported):
    clf = load_classifier(exported)
    assert isinstance(clf, PortableClassifier) and clf.hybrid.default == 'features'
    assert 'PortableClassifier(2 members × 1 snapshots' in repr(clf)

def test_classify_predict_on_an_export_without_torch_fastai_or_sklearn(exported, tmp_path):
    "`classify-predict` on the export, torch, fastai and scikit-learn unimportable: the pickled classifier's CSVs"
    env = blocked_env(tmp_path/'blocked', ('torch', 'fastai', 'sklearn'))
    probe = subprocess.run([sys.executable, '-c', 'import sklearn'], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and 'blocked by the test' in probe.stderr          # the blocker works
    res = subprocess.run([EXE, 'classify-predict', '--model', str(exported), '--images', str(OLD/'data'/'images'),
                          '--masks', str(OLD/'data'/'masks'), '--out', str(tmp_path/'pred')],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert '12 images classified by the features variant' in res.stdout
    _classify(OLD/'classifier', OLD/'data'/'images', tmp_path/'ref')
    assert _max_diff(tmp_path/'pred'/'predictions.csv', tmp_path/'ref'/'predictions.csv') <= MAX_DIFF
    mine, ref = pd.read_csv(tmp_path/'pred'/'report.csv'), pd.read_csv(tmp_path/'ref'/'report.csv')
    assert list(mine.columns) == list(ref.columns) and list(mine.pred) == list(ref.pred)

def _broken(exported:Path, d:Path, name:str, text:str|None)->Path:
    "A copy of the export in `d` whose file `name` holds `text` (None: is missing)"
    shutil.copytree(exported, d)
    if text is None: (d/name).unlink()
    else: (d/name).write_text(text)
    return d

@pytest.mark.parametrize('name,text,message', [
    ('member1/snapshot0.onnx', None, 'member1/snapshot0.onnx: missing (the contract names it)'),
    ('hybrid.json', None, 'hybrid.json: missing (the contract names it)'),
    ('hybrid.json', '{"classes": ', 'hybrid.json: not a readable JSON file'),
    ('hybrid.json', '{"classes": []}', 'hybrid.json: lacks columns, prior'),
    ('contract.json', '[1, 2]', 'contract.json: not a JSON object'),
])
def test_a_broken_export_is_named(exported, tmp_path, name, text, message):
    "A missing file or broken JSON: one line naming the file, from the library and from the command"
    d = _broken(exported, tmp_path/'x', name, text)
    with pytest.raises(LesionDataError, match=message.replace('(', r'\(').replace(')', r'\)')): PortableClassifier.load(d)
    res = subprocess.run([EXE, 'classify-predict', '--model', str(d), '--images', str(OLD/'data'/'images'),
                          '--masks', str(OLD/'data'/'masks'), '--out', str(tmp_path/'pred')], capture_output=True, text=True)
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr

def test_an_unknown_resample_is_named(exported, tmp_path):
    "A hand-edited contract whose member resamples with a filter the portable input does not make: one line naming it"
    d = tmp_path/'x'
    shutil.copytree(exported, d)
    c = json.loads((d/'contract.json').read_text())
    c['members'][0]['resample'] = 'magic'
    (d/'contract.json').write_text(json.dumps(c))
    with pytest.raises(LesionDataError, match="contract.json: unknown resample 'magic'"): PortableClassifier.load(d)

def test_exports_are_told_apart(exported, tmp_path):
    "An exported segmenter is no classifier, an exported classifier no segmenter: one line each"
    from lesion_fastai.seg.predict import load_model
    export_model(OLD/'model', tmp_path/'seg')
    with pytest.raises(LesionDataError, match='an exported model, not a classifier'): PortableClassifier.load(tmp_path/'seg')
    with pytest.raises(LesionDataError, match='an exported classifier: use classify-predict'): load_model(exported)

def test_export_refuses_bad_input_writing_nothing(exported, tmp_path):
    "An export over an export, or of a classifier whose segmentation model is gone: one line, nothing written"
    before = sorted(p.stat().st_mtime_ns for p in exported.rglob('*'))
    with pytest.raises(LesionDataError, match='already exists; nothing was written'): export_model(OLD/'classifier', exported)
    assert sorted(p.stat().st_mtime_ns for p in exported.rglob('*')) == before
    src = tmp_path/'cls'
    shutil.copytree(OLD/'classifier', src)
    man = json.loads((src/'classifier.json').read_text())
    (src/'classifier.json').write_text(json.dumps({**man, 'seg_model': str(tmp_path/'gone')}))
    with pytest.raises(LesionDataError, match='gone: the segmentation model this classifier crops by is missing'):
        export_model(src, tmp_path/'x')
    assert not (tmp_path/'x').exists() and not list(tmp_path.glob('.x-*'))

def test_the_classifiers_own_segmenter_is_exported_with_it(tmp_path):
    "A classifier that crops by its own segmentation model: that model exported into seg_model/, which crops without masks"
    src = tmp_path/'cls'
    shutil.copytree(OLD/'classifier', src)
    man = json.loads((src/'classifier.json').read_text())
    (src/'classifier.json').write_text(json.dumps({**man, 'seg_model': str(OLD/'model')}))
    c = export_model(src, tmp_path/'x')
    assert c['crop']['seg_model'] == 'seg_model' and (tmp_path/'x'/'seg_model'/'model.onnx').is_file()
    assert not list((tmp_path/'x').rglob('*.pkl'))
    clf = PortableClassifier.load(tmp_path/'x')
    assert clf.info['seg_model'] == str(tmp_path/'x'/'seg_model')
    rep = classify_folder(tmp_path/'x', OLD/'data'/'images', tmp_path/'pred', progress=False, log=lambda *a: None)
    ref = classify_folder(src, OLD/'data'/'images', tmp_path/'ref', progress=False, log=lambda *a: None)
    assert set(rep.mask_from) == {'predicted'} and list(rep.pred) == list(ref.pred)
    boxes = [pd.read_csv(d/'boxes.csv')[['x0', 'y0', 'x1', 'y1']].to_numpy() for d in (tmp_path/'pred', tmp_path/'ref')]
    assert np.abs(boxes[0] - boxes[1]).max() <= 2                   # masks of the two segmenters: a pixel or two apart

def test_serve_classifies_with_an_export(exported):
    "`serve --classifier EXPORTED`: POST /classify answers the export's diagnosis, as the pickled classifier's"
    from fastapi.testclient import TestClient
    from lesion_fastai.serve import make_app
    f = sorted((OLD/'data'/'images').iterdir())[0]
    answers = []
    for clf in (exported, OLD/'classifier'):
        with TestClient(make_app(OLD/'model', classifier=clf)) as c:
            r = c.post('/classify', files={'file': (f.name, f.read_bytes(), 'image/jpeg')})
        assert r.status_code == 200, r.text
        answers.append(r.json()['classification'])
    mine, ref = answers
    assert mine['pred'] == ref['pred'] and mine['variant'] == ref['variant'] == 'features'
    assert all(abs(mine['probs'][k] - ref['probs'][k]) <= MAX_DIFF for k in ref['probs'])

@pytest.mark.slow
def test_export_predicts_like_the_pickled_classifier_on_isic_dev(isic_dev, exported, tmp_path):
    "50 isic-dev images with their masks (varied sizes, real JPEGs): the CNN's probabilities and the hybrid's agree"
    files = sorted((isic_dev/'images').iterdir())[:50]
    (tmp_path/'images').mkdir()
    for f in files: (tmp_path/'images'/f.name).symlink_to(f)                       # read in place
    for variant in ('cnn', 'hybrid'):
        a = classify_folder(OLD/'classifier', tmp_path/'images', tmp_path/f'a_{variant}', masks=isic_dev/'masks',
                            variant=variant, progress=False, log=lambda *a: None)
        b = classify_folder(exported, tmp_path/'images', tmp_path/f'b_{variant}', masks=isic_dev/'masks',
                            variant=variant, progress=False, log=lambda *a: None)
        diff = _max_diff(tmp_path/f'a_{variant}'/'predictions.csv', tmp_path/f'b_{variant}'/'predictions.csv')
        print(f"isic-dev, {len(files)} images, {variant}: largest probability difference {diff:.2e}")
        assert diff <= MAX_DIFF and list(a.pred) == list(b.pred)
