"""What `predict` and `classify-predict` read and write, under bad inputs and faults (issue 27: hidden-corpus cases 1, 6
and 9, the `--out` security bullet, a full disk). Each case runs the CLI in process through `lesion_fastai.cli.main`
(the hanging case in a subprocess with a timeout), on copies of the small stored model and classifier of
`tests/fixtures/old_folders`, so nothing trains here."""
import errno, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from lesion_fastai.cli import main
from lesion_fastai.seg.ensemble import Ensemble
from lesion_fastai.cls.predict import Classifier
from test_corpus import pairs

OLD = Path(__file__).parent/'fixtures'/'old_folders'
IDS = ('ISIC_0000000', 'ISIC_0000001', 'ISIC_0000002')

@pytest.fixture
def images(tmp_path)->Path:
    "Three of the stored demo images"
    d = tmp_path/'images'
    d.mkdir()
    for i in IDS: shutil.copy(OLD/'data'/'images'/f'{i}.jpg', d)
    return d

def tree(d:Path)->dict:
    "Relative path → bytes (None for a folder) of everything under `d`"
    return {str(f.relative_to(d)): (None if f.is_dir() else f.read_bytes()) for f in sorted(d.rglob('*'))}

def run(capsys, *argv)->tuple:
    "(status, the stderr lines) of `lesion_fastai ARGV` run in process"
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip().splitlines()

def one_error(err:list, command:str='predict')->str:
    "The one `error:` line among `err` (no traceback)"
    assert not any('Traceback' in l for l in err), err
    errors = [l for l in err if l.startswith(f'lesion_fastai {command}: error: ')]
    assert len(errors) == 1, err
    return errors[0]

@pytest.fixture
def no_loading(monkeypatch):
    "Loading a model or a classifier fails the test: the refusals must come before it"
    def _loaded(*a, **k): raise AssertionError('a model was loaded before the refusal')
    monkeypatch.setattr(Ensemble, 'load', classmethod(_loaded))
    monkeypatch.setattr(Classifier, 'load', classmethod(_loaded))

def predict(capsys, images, out, *extra)->tuple:
    return run(capsys, 'predict', '--model', OLD/'model', '--images', images, '--out', out, *extra)

# ---------------------------------------------------------------- #1: a named pipe among the images

HANG = """
import sys
from lesion_fastai.cli import main
print(main(['check', '--data', sys.argv[1]]), main(['evaluate', '--truth', sys.argv[2], '--pred', sys.argv[3]]))
"""

def test_named_pipe_refused_not_opened(tmp_path):
    "A FIFO named like an image (or a link to one) is refused with one line naming it; nothing waits on it"
    data = pairs(tmp_path)
    os.mkfifo(data/'images'/'ISIC_0000009.jpg')
    shutil.copytree(data/'masks', tmp_path/'pred')
    os.mkfifo(tmp_path/'pipe')
    (tmp_path/'pred'/'ISIC_0000002_segmentation.png').unlink()
    (tmp_path/'pred'/'ISIC_0000002_segmentation.png').symlink_to(tmp_path/'pipe')
    res = subprocess.run([sys.executable, '-c', HANG, str(data), str(data/'masks'), str(tmp_path/'pred')],
                         capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ['2', '2'], res.stderr[-2000:]
    err = res.stderr.strip().splitlines()
    assert 'ISIC_0000009.jpg: not a regular file' in one_error(err, 'check')
    assert 'ISIC_0000002_segmentation.png: not a regular file' in one_error(err, 'evaluate')

def test_named_pipe_in_predict(tmp_path, images, capsys, no_loading):
    "predict lists its images the same way: the pipe is refused before the model loads"
    os.mkfifo(images/'ISIC_0000009.jpg')
    rc, err = predict(capsys, images, tmp_path/'out')
    assert rc == 2 and 'ISIC_0000009.jpg: not a regular file' in one_error(err)
    assert not (tmp_path/'out').exists()

# ---------------------------------------------------------------- #6: an --out holding another command's outputs

def test_predict_refuses_a_classifier_folder(tmp_path, images, capsys, no_loading):
    "A folder holding a classifier's predictions.csv and an overlays/ is refused, naming the CSV; nothing changes"
    out = tmp_path/'cls_out'
    (out/'overlays').mkdir(parents=True)
    shutil.copy(OLD/'classifier_pred'/'predictions.csv', out)
    (out/'overlays'/'ISIC_0000000.jpg').write_bytes(b'the classifier user\'s own picture')
    before = tree(out)
    rc, err = predict(capsys, images, out)
    line = one_error(err)
    assert rc == 2 and f"{out/'predictions.csv'}, written by classify-predict" in line
    assert tree(out) == before and sorted(os.listdir(tmp_path)) == ['cls_out', 'images']

def test_predict_merges_into_a_folder_of_other_files(tmp_path, images, capsys):
    "A folder holding other files (notes, other overlays) is merged into file by file: overlays/ is never nested"
    out = tmp_path/'out'
    (out/'overlays').mkdir(parents=True)
    (out/'overlays'/'other.jpg').write_bytes(b'x')
    (out/'notes.md').write_text('mine')
    before = tree(out)
    rc, err = predict(capsys, images, out)
    assert rc == 0, err
    after = tree(out)
    assert {k: after[k] for k in before} == before                      # nothing of what was there changed
    assert sorted(os.listdir(out/'overlays')) == ['ISIC_0000000.jpg', 'ISIC_0000001.jpg', 'ISIC_0000002.jpg', 'other.jpg']
    assert not (out/'overlays'/'overlays').exists() and (out/'predictions.csv').exists()
    assert sorted(os.listdir(tmp_path)) == ['images', 'out']            # no staging folder left

def test_predict_again_into_its_own_output(tmp_path, images, capsys):
    "The rule: predicting never replaces a file, its own included; the second run is refused and changes nothing"
    out = tmp_path/'out'
    assert predict(capsys, images, out)[0] == 0
    assert (out.stat().st_mode & 0o777) == (0o777 & ~_umask())          # the usual permissions, not mkdtemp's 0700
    before = tree(out)
    rc, err = predict(capsys, images, out)
    assert rc == 2 and f"{out/'predictions.csv'}, written by predict); choose a new folder" in one_error(err)
    assert tree(out) == before

def _umask()->int:
    m = os.umask(0)
    os.umask(m)
    return m

def test_classify_predict_refuses_a_predict_folder(tmp_path, images, capsys, no_loading):
    "classify-predict into a folder where predict wrote: refused before loading, naming predict's CSV"
    out = tmp_path/'pred'
    out.mkdir()
    shutil.copy(OLD/'model_pred'/'predictions.csv', out)
    before = tree(out)
    rc, err = run(capsys, 'classify-predict', '--model', OLD/'classifier', '--images', images, '--out', out,
                  '--masks', OLD/'data'/'masks')
    assert rc == 2 and 'predictions.csv, written by predict' in one_error(err, 'classify-predict')
    assert tree(out) == before

# ---------------------------------------------------------------- #9: numeric options

@pytest.mark.parametrize('bs', ['-1', '0'])
def test_bs_below_one(tmp_path, images, capsys, no_loading, bs):
    rc, err = predict(capsys, images, tmp_path/'o', '--bs', bs)
    assert rc == 2 and f'bs must be a whole number of at least 1 (images per forward pass), got {bs}' in one_error(err)
    rc, err = run(capsys, 'classify-predict', '--model', OLD/'classifier', '--images', images, '--out', tmp_path/'c',
                  '--masks', OLD/'data'/'masks', '--bs', bs)
    assert rc == 2 and 'bs must be a whole number of at least 1' in one_error(err, 'classify-predict')
    assert sorted(os.listdir(tmp_path)) == ['images']

# ---------------------------------------------------------------- security: --out among the inputs, or a file

@pytest.mark.parametrize('where,says', [
    ('images', 'is the --images folder or inside it'), ('images/sub', 'is the --images folder or inside it'),
    ('truth', 'is the --truth folder or inside it'), ('model', 'is the --model folder; predictions are never'),
    ('a_file', 'a_file: is a file; --out must be a folder'), ('a_file/sub', 'a_file: is a file; --out must be a folder')])
def test_out_among_inputs_or_a_file(tmp_path, images, capsys, no_loading, where, says):
    "Refused before the model loads, with one line; the inputs are left as they were"
    shutil.copytree(OLD/'data'/'masks', tmp_path/'truth')
    shutil.copytree(OLD/'model', tmp_path/'model')
    (tmp_path/'a_file').write_text('x')
    before = tree(tmp_path)
    rc, err = run(capsys, 'predict', '--model', tmp_path/'model', '--images', images, '--out', tmp_path/where,
                  '--truth', tmp_path/'truth')
    assert rc == 2 and says in one_error(err)
    assert tree(tmp_path) == before

def test_classify_out_among_inputs(tmp_path, images, capsys, no_loading):
    rc, err = run(capsys, 'classify-predict', '--model', OLD/'classifier', '--images', images, '--out', images,
                  '--masks', OLD/'data'/'masks')
    assert rc == 2 and 'is the --images folder or inside it' in one_error(err, 'classify-predict')
    assert sorted(os.listdir(images)) == [f'{i}.jpg' for i in IDS]

# ---------------------------------------------------------------- a full disk while writing predictions

def _full_after(monkeypatch, n:int, named:bool=True):
    "`PIL.Image.Image.save` fails as on a full disk from its `n`-th call on"
    calls, save = [0], Image.Image.save
    def _save(self, fp, *a, **k):
        calls[0] += 1
        if calls[0] > n: raise OSError(errno.ENOSPC, 'No space left on device', *([str(fp)] if named else []))
        return save(self, fp, *a, **k)
    monkeypatch.setattr(Image.Image, 'save', _save)

@pytest.mark.parametrize('named', [True, False])
def test_full_disk_keeps_previous_state(tmp_path, images, capsys, monkeypatch, named):
    "The disk fills after 4 files: --out is exactly as it was, no staging folder is left, one line names the file"
    out = tmp_path/'out'
    (out/'overlays').mkdir(parents=True)
    (out/'keep.txt').write_text('previous good state')
    (out/'overlays'/'old.jpg').write_bytes(b'old')
    before = tree(out)
    _full_after(monkeypatch, 4, named)
    rc, err = predict(capsys, images, out)
    line = one_error(err)
    assert rc == 2 and 'No space left on device' in line and f'{out}/' in line and f'{out} is as it was' in line
    assert tree(out) == before and sorted(os.listdir(tmp_path)) == ['images', 'out']

def test_full_disk_new_folder(tmp_path, images, capsys, monkeypatch):
    "Into a new folder: it is not created at all"
    _full_after(monkeypatch, 2)
    rc, err = predict(capsys, images, tmp_path/'new')
    assert rc == 2 and 'No space left on device' in one_error(err)
    assert sorted(os.listdir(tmp_path)) == ['images']

@pytest.fixture
def small_disk(tmp_path):
    "A 64 kB tmpfs (needs root and mount; skipped elsewhere), unmounted afterwards"
    d = tmp_path/'disk'
    d.mkdir()
    if os.geteuid() != 0 or subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', str(d)],
                                           capture_output=True).returncode != 0:
        pytest.skip('cannot mount a small tmpfs here (needs root)')
    yield d
    subprocess.run(['umount', str(d)], check=True)

def test_real_full_disk(small_disk, images, capsys):
    "A real full filesystem: --out keeps its previous files, no staging folder is left, one line"
    out = small_disk/'out'
    out.mkdir()
    (out/'keep.txt').write_text('previous good state')
    st = os.statvfs(small_disk)
    (small_disk/'filler').write_bytes(b'\0'*(st.f_bavail*st.f_frsize - 8192))     # two pages left
    before = tree(out)
    rc, err = predict(capsys, images, out)
    assert rc == 2 and 'No space left on device' in one_error(err)
    assert tree(out) == before and sorted(os.listdir(small_disk)) == ['filler', 'out']
