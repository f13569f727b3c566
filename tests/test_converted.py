"A trained folder on OpenVINO: converted once with torch, then `predict` and `serve` read it back without torch or fastai."
import json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest

pytest.importorskip('openvino')

import lesion_fastai.portable as portable
from lesion_fastai.io import load_image
from lesion_fastai.portable import PortableModel, converted_file, folder_key, load_converted, openvino_wanted
from lesion_fastai.seg.ensemble import Ensemble
from lesion_fastai.seg.predict import load_model
from conftest import blocked_env

OLD = Path(__file__).parent/'fixtures'/'old_folders'
EXE = str(Path(sys.executable).with_name('lesion_fastai'))

@pytest.fixture
def home(tmp_path, monkeypatch):
    "A fresh `LESION_FASTAI_HOME` (so a fresh cache of converted networks), OpenVINO wanted, CPU only"
    monkeypatch.setenv('LESION_FASTAI_HOME', str(tmp_path/'home'))
    monkeypatch.delenv('LESION_FASTAI_RUNTIME', raising=False)
    monkeypatch.setattr(portable, 'gpu_present', lambda: False)
    return tmp_path/'home'

@pytest.fixture
def trained(tmp_path):
    "Copies of the fixture model and ensemble (their own modification times: a conversion of their own)"
    for name in ('model', 'ensemble'): shutil.copytree(OLD/name, tmp_path/'trained'/name)
    return tmp_path/'trained'

def _run(*args, env=None):
    return subprocess.run([EXE, *map(str, args)], env=env, capture_output=True, text=True)

def _outputs(d:Path)->dict:
    "The bytes of every file `predict` wrote into `d` (masks, probability maps, the report), by name"
    return {f.name: f.read_bytes() for f in sorted(d.glob('*.*'))}

@pytest.mark.parametrize('name', ['model', 'ensemble'])
def test_load_model_keeps_and_reads_the_conversion(home, trained, name):
    "The first OpenVINO load converts and keeps the contract; the second reads it, predicting the same"
    assert load_converted(trained/name) is None
    first = load_model(trained/name, runtime='auto')
    assert isinstance(first, PortableModel) and first.runtime == 'openvino'
    f = converted_file(trained/name)
    c = json.loads(f.read_text())
    assert c['engine'] == 'openvino' and c['kind'] == ('model' if name == 'model' else 'ensemble')
    assert all((f.parent/m['file']).is_file() and (f.parent/m['file']).with_suffix('.bin').is_file() for m in c['members'])
    second = load_model(trained/name, runtime='auto')
    assert isinstance(second, PortableModel) and second.contract == first.contract
    imgs = [load_image(p) for p in sorted((OLD/'data'/'images').iterdir())[:4]]
    for r, s in zip(first.predict(imgs), second.predict(imgs)):
        assert (r['mask'] == s['mask']).all() and np.array_equal(r['prob'], s['prob'])

def test_the_conversion_keeps_the_folders_own_tta(home, trained):
    "A first run with TTA off does not turn it off for later runs: the contract holds the folder's own setting"
    own = Ensemble.load(trained/'ensemble').tta
    assert load_model(trained/'ensemble', tta=not own, runtime='auto').tta is (not own)
    assert load_model(trained/'ensemble', runtime='auto').tta is own

def test_torch_runtime_and_a_gpu_keep_the_torch_route(home, trained, monkeypatch):
    load_model(trained/'model', runtime='auto')
    assert isinstance(load_model(trained/'model', runtime='torch'), Ensemble)
    assert not openvino_wanted('torch') and openvino_wanted('openvino')
    monkeypatch.setenv('LESION_FASTAI_RUNTIME', 'torch')
    assert not openvino_wanted(None)
    monkeypatch.delenv('LESION_FASTAI_RUNTIME')
    monkeypatch.setattr(portable, 'gpu_present', lambda: True)
    assert not openvino_wanted('auto') and load_converted(trained/'model') is None

def test_a_changed_folder_is_converted_again(home, trained):
    "Another config, or a touched pickle, is another folder: the old conversion is not read for it"
    load_model(trained/'model', runtime='auto')
    key = folder_key(trained/'model')
    cfg = trained/'model'/'config.json'
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), 'threshold': 0.6}))
    assert folder_key(trained/'model') != key and load_converted(trained/'model') is None
    assert load_model(trained/'model', runtime='auto').threshold == 0.6
    key = folder_key(trained/'model')
    os.utime(trained/'model'/'model.pkl', ns=(1, 1))
    assert folder_key(trained/'model') != key and load_converted(trained/'model') is None

def test_predict_twice_the_second_without_torch(home, trained, tmp_path):
    "`lesion_fastai predict` converts on its first run; its second, torch and fastai blocked, writes the same files"
    env = {**os.environ, 'LESION_FASTAI_HOME': str(home)}
    args = ['--images', OLD/'data'/'images', '--probs', '--no-overlays']
    res = _run('predict', '--model', trained/'ensemble', '--out', tmp_path/'first', *args, env=env)
    assert res.returncode == 0 and 'PortableModel(2 members' in res.stdout and 'runtime openvino' in res.stdout, res.stderr
    blocked = blocked_env(tmp_path/'blocked')
    assert _run('predict', '--help', env=blocked).returncode == 0
    res = _run('predict', '--model', trained/'ensemble', '--out', tmp_path/'second', *args, env=blocked)
    assert res.returncode == 0, res.stdout + res.stderr
    first, second = _outputs(tmp_path/'first'), _outputs(tmp_path/'second')
    assert first.keys() == second.keys() and len(first) == 25
    assert first == second

def test_predict_with_torch_blocked_and_nothing_converted_fails_in_one_line(home, trained, tmp_path):
    "Without a conversion the torch route is taken: with torch blocked it fails, and says so in one line"
    res = _run('predict', '--model', trained/'model', '--images', OLD/'data'/'images', '--out', tmp_path/'o',
               env=blocked_env(tmp_path/'blocked'))
    assert res.returncode != 0 and 'Traceback' not in res.stderr and not (tmp_path/'o').exists()

def test_serve_takes_a_loaded_portable_model(home, trained):
    "`serve` on a folder it loads as a `PortableModel` (converted, or exported) answers like `predict`"
    from fastapi.testclient import TestClient
    from lesion_fastai.serve import make_app
    m = load_model(trained/'model', runtime='auto')
    f = sorted((OLD/'data'/'images').iterdir())[0]
    with TestClient(make_app(m, folder=trained/'model')) as c:
        assert c.get('/health').json()['runtime'] == 'openvino'
        r = c.post('/predict', files={'file': (f.name, f.read_bytes(), 'image/jpeg')})
    assert r.status_code == 200 and r.json()['width'] == load_image(f).width
