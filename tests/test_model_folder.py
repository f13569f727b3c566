"""Model folders under faults and tampering: a swapped pickle is refused unread, members stay inside their folder,
`config.json` is validated, export is atomic (a full disk or a stop mid-export leaves the previous good state), and
the library refuses to retrain a finished folder as the command line does."""
import errno, json, pickle, shutil
from pathlib import Path
import pytest
import torch
from lesion_fastai.cli import main
from lesion_fastai.config import LesionDataError
from lesion_fastai.demo import make_demo_set
from lesion_fastai.io import write_json
from lesion_fastai.learner.folder import file_sha256, read_learner
from lesion_fastai.seg.recipe import train_segmenter

TINY = dict(arch='unet-classic8', sizes=(64,), epochs=1, bs=4, lr=1e-3, progress=False, log=lambda s: None)

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A tiny finished model folder and the demo data it was trained on"
    root = tmp_path_factory.mktemp('folder')
    make_demo_set(root/'data', n=6, prefix='ISIC_000')
    train_segmenter(root/'data', root/'model', **TINY)
    return root

def _copy(trained, tmp_path)->Path:
    return Path(shutil.copytree(trained/'model', tmp_path/'model'))

def _predict(model, trained, tmp_path, capsys)->tuple:
    "`predict` in process: (status, stderr)"
    status = main(['predict', '--model', str(model), '--images', str(trained/'data'/'images'),
                   '--out', str(tmp_path/'pred'), '--no-overlays'])
    return status, capsys.readouterr().err

class Payload:
    "Unpickling this creates the file `ran`: what a crafted model.pkl could do"
    def __init__(self, ran): self.ran = ran
    def __reduce__(self): return (Path.touch, (self.ran,))

def test_config_records_the_pickle(trained):
    cfg = json.loads((trained/'model'/'config.json').read_text())
    assert cfg['model_sha256'] == file_sha256(trained/'model'/'model.pkl')

def test_swapped_pickle_is_refused_unread(trained, tmp_path, capsys):
    m, ran = _copy(trained, tmp_path), tmp_path/'payload-ran'
    (m/'model.pkl').write_bytes(pickle.dumps(Payload(ran)))
    status, err = _predict(m, trained, tmp_path, capsys)
    assert status == 2 and err.count('\n') == 1 and 'refusing to unpickle' in err and 'model.pkl' in err
    assert not ran.exists() and not (tmp_path/'pred').exists()

def test_member_outside_the_folder_is_refused(trained, tmp_path, capsys):
    ens = tmp_path/'ens'
    (ens/'inside').mkdir(parents=True)
    outside = _copy(trained, tmp_path)
    man = {'format': 'lesion_fastai.ensemble/1', 'lesion_fastai': '0.1.0', 'members': [{'path': '../model'}],
           'classes': ['background', 'lesion'], 'threshold': .5, 'postprocess': True, 'tta': False, 'qc_threshold': .2}
    write_json(man, ens/'ensemble.json')
    status, err = _predict(ens, trained, tmp_path, capsys)
    assert status == 2 and "member '../model' lies outside the folder" in err and outside.exists()

@pytest.mark.parametrize('threshold', [None, 2.0, 0, 'half'])
def test_config_threshold_is_validated(trained, tmp_path, capsys, threshold):
    m = _copy(trained, tmp_path)
    cfg = json.loads((m/'config.json').read_text())
    write_json({**cfg, 'threshold': threshold}, m/'config.json')
    status, err = _predict(m, trained, tmp_path, capsys)
    assert status == 2 and f"threshold {threshold!r} is not a number in (0, 1)" in err and 'Traceback' not in err

def test_train_batch_size_zero(trained, tmp_path, capsys):
    status = main(['train', '--data', str(trained/'data'), '--out', str(tmp_path/'m'), '--bs', '0', '--epochs', '1'])
    err = capsys.readouterr().err
    assert status == 2 and 'bs must be at least 1, got [0]' in err and not (tmp_path/'m').exists()

def _state(folder:Path)->dict:
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}

def test_full_disk_during_export_keeps_the_previous_model(trained, tmp_path, monkeypatch):
    "A write that fails with ENOSPC while `model.pkl` is exported: the previous model and config stay, no temp file"
    m = _copy(trained, tmp_path)
    before = _state(m)
    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b'\0'*100)
        raise OSError(errno.ENOSPC, 'No space left on device', str(f))
    monkeypatch.setattr(torch, 'save', full)
    with pytest.raises(OSError, match='No space left'):
        train_segmenter(trained/'data', m, **{**TINY, 'log': print}, resume=False)
    assert {k: v for k, v in _state(m).items() if k in before} == before
    assert not list(m.glob('.tmp-*')) and read_learner(m/'model.pkl', precision='fp32') is not None

def test_stop_during_export_is_not_finished(trained, tmp_path, monkeypatch):
    "Ctrl-C or SIGTERM while `model.pkl` is written: no config.json, so the folder is not finished and resumes"
    def stopped(obj, f, *args, **kwargs):
        Path(f).write_bytes(b'\0'*100)
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, 'save', stopped)
    with pytest.raises(KeyboardInterrupt): train_segmenter(trained/'data', tmp_path/'m', **TINY)
    assert not (tmp_path/'m'/'config.json').exists() and not (tmp_path/'m'/'model.pkl').exists()
    monkeypatch.undo()
    train_segmenter(trained/'data', tmp_path/'m', **TINY)
    assert (tmp_path/'m'/'config.json').exists()

def test_library_refuses_to_retrain_a_finished_folder(trained, tmp_path):
    m = _copy(trained, tmp_path)
    before = (m/'model.pkl').read_bytes()
    with pytest.raises(LesionDataError, match='holds a finished model; train it again from scratch with --restart'):
        train_segmenter(trained/'data', m, **TINY)
    assert (m/'model.pkl').read_bytes() == before
    train_segmenter(trained/'data', m, **TINY, resume=False)
    assert json.loads((m/'config.json').read_text())['model_sha256'] == file_sha256(m/'model.pkl')
