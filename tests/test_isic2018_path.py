"""ISIC 2018 from download to submission, as a user runs it: the installed `lesion_fastai` script in subprocesses,
against a local mirror (`ArchiveMirror`) of the miniature ISIC 2018 (`tools/mini_isic2018.py`), downloads off
(`LESION_FASTAI_OFFLINE=1`) and `LESION_FASTAI_ISIC_URL` at the mirror.
Task 1: download → check → train (tiny) → download the test split → predict → submission, the zip opened and checked.
Task 3: download → classify-train (seven classes, tiny) → classify-predict → classify-evaluate, the official scorer.
A connection cut mid-file, a wrong hash and a 404 each end in one line, status 2, and no split folder."""
import io, json, os, shutil, subprocess, sys, zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lesion_fastai.download import ISIC2018_FILES, ArchiveMirror, MirrorHandler, _copy_some

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name('lesion_fastai'))
CLASSES = ['MEL', 'NV', 'BCC', 'AKIEC', 'BKL', 'DF', 'VASC']
T1_TEST = 'ISIC2018_Task1-2_Test_Input.zip'
GT3 = 'ISIC2018_Task3_Training_GroundTruth'

def _run(url, *args):
    "Run the installed CLI with downloads off and the ISIC archives at `url`"
    env = dict(os.environ, LESION_FASTAI_OFFLINE='1', LESION_FASTAI_ISIC_URL=url, OMP_NUM_THREADS='1')
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)

def _ok(res):
    "`res`, asserting that it succeeded"
    assert res.returncode == 0, f"{res.args}\n{res.stdout}\n{res.stderr}"
    return res

def _build(out:Path, *args)->Path:
    "Build the miniature ISIC 2018 into `out` with the tool"
    _ok(subprocess.run([sys.executable, ROOT/'tools'/'mini_isic2018.py', '--out', out, *args], capture_output=True,
                       text=True))
    return out

@pytest.fixture(scope='module')
def archives(tmp_path_factory):
    "The miniature ISIC 2018, built by the tool"
    return _build(tmp_path_factory.mktemp('mini-isic2018'))

@pytest.fixture(scope='module')
def mirror(archives):
    "The base URL of a local mirror serving the miniature archives"
    with ArchiveMirror(archives) as url: yield url

def test_mini_archives(archives, tmp_path):
    "Every archive `download` asks for, the challenge's folder inside, ATTRIBUTION, LICENSE; the same bytes twice"
    names = {n for names in ISIC2018_FILES.values() for n in names}
    assert names <= {p.name for p in archives.iterdir()}
    with zipfile.ZipFile(archives/'ISIC2018_Task1-2_Training_Input.zip') as z:
        listed = z.namelist()
    top = 'ISIC2018_Task1-2_Training_Input/'
    assert {top + 'ATTRIBUTION.txt', top + 'LICENSE.txt'} <= set(listed) and len(listed) == 24 + 2
    with zipfile.ZipFile(archives/'ISIC2018_Task3_Training_GroundTruth.zip') as z:
        gt = pd.read_csv(io.BytesIO(z.read(f'{GT3}/{GT3}.csv')))
    assert list(gt.columns) == ['image', *CLASSES] and (gt[CLASSES].sum(axis=1) == 1.0).all()
    groups = pd.read_csv(archives/'ISIC2018_Task3_Training_LesionGroupings.csv')
    assert list(groups.columns[:2]) == ['image', 'lesion_id'] and groups.lesion_id.nunique() == len(groups)//2
    a, b = _build(tmp_path/'a', '--generated'), _build(tmp_path/'b', '--generated')
    assert (a/'SHA256SUMS').read_text() == (b/'SHA256SUMS').read_text()

@pytest.fixture(scope='module')
def task1(tmp_path_factory, mirror):
    "Task 1's training split downloaded and checked, and a tiny model trained on it: (data folder, model folder)"
    work = tmp_path_factory.mktemp('task1')
    _ok(_run(mirror, 'download', 'isic2018', '--task', 1, '--split', 'train', '--to', work/'isic2018'))
    train = work/'isic2018'/'task1'/'train'
    assert '24 image/mask pairs OK' in _ok(_run(mirror, 'check', '--data', train)).stdout
    _ok(_run(mirror, 'train', '--data', train, '--out', work/'model', '--epochs', 1, '--size', 64))
    return work/'isic2018', work/'model'

def _check_submission(path:Path, images:Path):
    "The submission zip holds one 0/255 8-bit PNG per test image, of its image's size, and nothing else"
    ids = sorted(p.stem for p in images.glob('ISIC_*.jpg'))
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == [f'{i}_segmentation.png' for i in ids]
        for i in ids:
            m = Image.open(io.BytesIO(z.read(f'{i}_segmentation.png')))
            assert m.mode == 'L' and m.size == Image.open(images/f'{i}.jpg').size
            assert set(np.unique(np.asarray(m))) <= {0, 255}

def test_task1_download_to_submission(task1, mirror, tmp_path):
    "download → check → train → download test → predict → submission, the zip checked"
    data, model = task1
    _ok(_run(mirror, 'download', 'isic2018', '--task', 1, '--split', 'test', '--to', data))
    images = data/'task1'/'test'/'ISIC2018_Task1-2_Test_Input'
    _ok(_run(mirror, 'predict', '--model', model, '--images', images, '--out', tmp_path/'pred'))
    res = _ok(_run(mirror, 'submission', '--images', images, '--masks', tmp_path/'pred', '--out', tmp_path/'sub.zip'))
    assert res.stdout.strip() == f"8 masks checked and zipped into {tmp_path/'sub.zip'}"
    _check_submission(tmp_path/'sub.zip', images)

def _task3_train(data:Path)->list:
    "classify-train's arguments for Task 3's downloaded training split"
    d = data/'task3'/'train'
    return ['--images', d/'ISIC2018_Task3_Training_Input',
            '--labels', d/'ISIC2018_Task3_Training_GroundTruth'/'ISIC2018_Task3_Training_GroundTruth.csv',
            '--groups', d/'ISIC2018_Task3_Training_LesionGroupings.csv']

TINY_CLASSIFIER = ['--arch', 'resnet18', '--size', 64, '--full-cycles', 1, '--crop-cycles', 1, '--cycle-len', 1,
                   '--keep', 1, '--k', 4]

def test_task3_download_to_official_score(task1, mirror, tmp_path):
    "download → classify-train (seven classes, cropped by the Task 1 model) → classify-predict → classify-evaluate"
    data, seg_model = task1
    for split in ('train', 'valid'):
        _ok(_run(mirror, 'download', 'isic2018', '--task', 3, '--split', split, '--to', data))
    res = _ok(_run(mirror, 'classify-train', *_task3_train(data), '--seg-model', seg_model,
                   '--out', tmp_path/'clf', *TINY_CLASSIFIER))
    assert '56 labelled images: MEL 8, NV 8, BCC 8, AKIEC 8, BKL 8, DF 8, VASC 8; 28 lesions' in res.stdout
    valid = data/'task3'/'valid'
    _ok(_run(mirror, 'classify-predict', '--model', tmp_path/'clf', '--images', valid/'ISIC2018_Task3_Validation_Input',
             '--out', tmp_path/'pred'))
    pred = pd.read_csv(tmp_path/'pred'/'predictions.csv')
    assert list(pred.columns) == ['image', *CLASSES] and len(pred) == 14
    truth = valid/'ISIC2018_Task3_Validation_GroundTruth'/'ISIC2018_Task3_Validation_GroundTruth.csv'
    s = json.loads(_ok(_run(mirror, 'classify-evaluate', '--truth', truth, '--pred', tmp_path/'pred'/'predictions.csv',
                            '--json')).stdout)
    assert s['n_images'] == 14 and 0 <= s['balanced_accuracy'] <= 1 and sorted(s['per_class']) == sorted(CLASSES)

# Broken downloads: one line, status 2, no split folder; the archive never under its own name
class CutMirror(MirrorHandler):
    "A mirror whose connection breaks halfway through every whole file it sends"
    def copyfile(self, source, out):
        if self.length is not None: return super().copyfile(source, out)
        _copy_some(source, out, os.fstat(source.fileno()).st_size//2)

def _changed_copy(archives:Path, dest:Path)->Path:
    "A copy of the archives folder whose Task 1 test images archive has one byte changed (same size)"
    shutil.copytree(archives, dest)
    b = bytearray((dest/T1_TEST).read_bytes())
    b[len(b)//2] ^= 0xFF
    (dest/T1_TEST).write_bytes(bytes(b))
    return dest

def _record_genuine(archives:Path, to:Path):
    "Record the genuine size and SHA-256 of the Task 1 test images archive, as a first download would have"
    sums = dict(reversed(l.split()) for l in (archives/'SHA256SUMS').read_text().splitlines())
    (to/'archives').mkdir(parents=True)
    rec = {T1_TEST: dict(size=(archives/T1_TEST).stat().st_size, sha256=sums[T1_TEST])}
    (to/'archives'/'checksums.json').write_text(json.dumps(rec))

def _broken_download(fault:str, archives:Path, tmp_path:Path):
    "Download Task 1's test split with `fault`: the result"
    to = tmp_path/'isic2018'
    if fault == 'hash': _record_genuine(archives, to)
    folder = {'cut': archives, '404': tmp_path/'empty', 'hash': tmp_path/'changed'}[fault]
    if fault == '404': folder.mkdir()
    if fault == 'hash': _changed_copy(archives, folder)
    with ArchiveMirror(folder, handler=CutMirror if fault == 'cut' else MirrorHandler) as url:
        return url, _run(url, 'download', 'isic2018', '--task', 1, '--split', 'test', '--to', to)

WHAT = {'cut': 'connection broken after', '404': 'HTTP 404', 'hash': 'differs from the recorded'}

@pytest.mark.parametrize('fault', ['cut', 'hash', '404'])
def test_broken_download(fault, archives, tmp_path):
    "A cut, a wrong hash or a 404: one line naming the archive, status 2, no split folder and no archive"
    url, res = _broken_download(fault, archives, tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith('lesion_fastai download: error: ') and WHAT[fault] in lines[0] and T1_TEST in lines[0]
    to = tmp_path/'isic2018'
    assert not (to/'task1').exists() and not (to/'archives'/T1_TEST).exists()
