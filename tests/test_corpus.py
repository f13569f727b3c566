"""The bad-input corpus: every case is one command line on damaged copies of real isic-dev pairs (or synthetic
pairs where isic-dev is absent), with the status and the one line it must give. No case may print a traceback.

Most cases run in process through `lesion_fastai.cli.main` (the function the installed script calls), because each
subprocess pays the 6 s import of fastai; `test_installed_script` runs a representative subset through the installed
`lesion_fastai` script, in parallel. The case list with what each input gets is in the README (`CORPUS` below is its
source: `tools/make_readme.py` does not need it, the table there is written from it by hand and checked here)."""
import json, os, shutil, signal, struct, subprocess, sys, time, zlib
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import _isic_dev
from lesion_fastai.cli import main
from lesion_fastai.command import INTERRUPTED
import lesion_fastai.cli as cli
import lesion_fastai

EXE = str(Path(sys.executable).with_name('lesion_fastai'))
IDS = ('ISIC_0000001', 'ISIC_0000002', 'ISIC_0000003')

# ---------------------------------------------------------------- building inputs

def _real_pairs():
    "Three real isic-dev pairs (image file, mask file), or None"
    dev = _isic_dev()
    if dev is None: return None
    ims = sorted((dev/'images').glob('*.jpg'))[:3]
    return [(i, dev/'masks'/f'{i.stem}_segmentation.png') for i in ims]

def pairs(d:Path)->Path:
    "A data folder `d/data` (images/ + masks/) of three pairs named ISIC_000000N: real isic-dev pairs where available"
    (d/'data'/'images').mkdir(parents=True); (d/'data'/'masks').mkdir()
    real = _real_pairs()
    for k, iid in enumerate(IDS):
        if real:
            shutil.copy(real[k][0], d/'data'/'images'/f'{iid}.jpg'); shutil.copy(real[k][1], d/'data'/'masks'/f'{iid}_segmentation.png')
        else:
            rgb = np.full((48, 64, 3), 180, np.uint8); m = np.zeros((48, 64), np.uint8); m[10:30, 15:40] = 255; rgb[m > 0] = 60
            Image.fromarray(rgb).save(d/'data'/'images'/f'{iid}.jpg'); Image.fromarray(m).save(d/'data'/'masks'/f'{iid}_segmentation.png')
    return d/'data'

def truth_pred(d:Path)->tuple:
    "(truth folder, prediction folder): the three masks, and copies of them as predictions"
    data = pairs(d)
    shutil.copytree(data/'masks', d/'pred')
    return data/'masks', d/'pred'

def mask_of(folder:Path, iid='ISIC_0000002')->np.ndarray:
    "The 0/1 lesion mask `iid` of `folder`"
    return (np.asarray(Image.open(folder/f'{iid}_segmentation.png')) > 128).astype(np.uint8)

def bomb_png(path:Path, w=20000, h=10000):
    "A tiny PNG whose header claims `w`x`h` pixels (over PIL's decompression-bomb limit of about 179 MP)"
    Image.new('L', (1, 1)).save(path)
    b = bytearray(path.read_bytes())
    b[16:24] = struct.pack('>II', w, h)                                     # IHDR width, height
    b[29:33] = struct.pack('>I', zlib.crc32(bytes(b[12:29])) & 0xffffffff)  # IHDR CRC
    path.write_bytes(bytes(b))

def exif_jpg(path:Path, size=(64, 48), orientation=6):
    "A JPEG whose EXIF orientation says: rotate 90° to view"
    exif = Image.Exif(); exif[0x0112] = orientation
    Image.fromarray(np.full((size[1], size[0], 3), 120, np.uint8)).save(path, exif=exif)

def csvs(d:Path, truth:str, pred:str)->tuple:
    "Two Task 3 CSV files with the given contents"
    (d/'truth.csv').write_text(truth); (d/'pred.csv').write_text(pred)
    return d/'truth.csv', d/'pred.csv'

T3_TRUTH = "image,MEL,NV\nISIC_0000001,1,0\nISIC_0000002,0,1\n"
T3_PRED = "image,MEL,NV\nISIC_0000001,0.9,0.1\nISIC_0000002,0.2,0.8\n"

def member(d:Path, **changes)->Path:
    "A model folder `d/m`: a config.json that says what a member must, with `changes`, beside a model.pkl of junk"
    (d/'m').mkdir()
    (d/'m'/'model.pkl').write_bytes(b'x')
    cfg = {'lesion_fastai': lesion_fastai.__version__, 'arch': 'unet-classic8', 'size': 64,
           'classes': ['background', 'lesion'], 'threshold': .5, 'postprocess': True, 'colour_constancy': False}
    (d/'m'/'config.json').write_text(json.dumps({**cfg, **changes}))
    return d/'m'

def outside_member(d:Path)->Path:
    "An ensemble folder `d/e` whose manifest names a member outside it, `../m`"
    member(d)
    (d/'e').mkdir()
    man = {'format': 'lesion_fastai.ensemble/1', 'lesion_fastai': lesion_fastai.__version__, 'members': [{'path': '../m'}],
           'classes': ['background', 'lesion'], 'threshold': .5, 'postprocess': True, 'tta': False, 'qc_threshold': .2}
    (d/'e'/'ensemble.json').write_text(json.dumps(man))
    return d/'e'

def _predict_with(model:Path, d:Path)->list:
    return ['predict', '--model', model, '--images', pairs(d)/'images', '--out', d/'o']

# ---------------------------------------------------------------- the corpus: name → (build(tmp) → argv, status, stderr must contain)

def _check(build):
    def f(d):
        data = pairs(d); build(d, data)
        return ['check', '--data', data]
    return f

def _evaluate(build, *extra):
    def f(d):
        t, p = truth_pred(d); build(d, t, p)
        return ['evaluate', '--truth', t, '--pred', p, *extra]
    return f

def _rm(p): p.unlink()

def _grey(mask:Path):
    "Overwrite `mask` with three grey levels (0, 100, 200), as a resampled mask has"
    w, h = Image.open(mask).size
    Image.fromarray((np.arange(w*h).reshape(h, w) % 3 * 100).astype(np.uint8)).save(mask)

CORPUS = {
    # check: images
    'valid pairs':                  (_check(lambda d, a: None), 0, ''),
    'corrupt jpeg':                 (_check(lambda d, a: (a/'images'/'ISIC_0000002.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a jpeg')), 2, 'ISIC_0000002.jpg: corrupt'),
    'truncated jpeg':               (_check(lambda d, a: (a/'images'/'ISIC_0000002.jpg').write_bytes((a/'images'/'ISIC_0000002.jpg').read_bytes()[:600])), 2, 'ISIC_0000002.jpg: corrupt or truncated'),
    'zero-byte image':              (_check(lambda d, a: (a/'images'/'ISIC_0000002.jpg').write_bytes(b'')), 2, 'ISIC_0000002.jpg: not an image'),
    'zero-byte mask':               (_check(lambda d, a: (a/'masks'/'ISIC_0000002_segmentation.png').write_bytes(b'')), 2, 'ISIC_0000002_segmentation.png: not an image'),
    'truncated mask':               (_check(lambda d, a: (a/'masks'/'ISIC_0000002_segmentation.png').write_bytes((a/'masks'/'ISIC_0000002_segmentation.png').read_bytes()[:60])), 2, 'ISIC_0000002_segmentation.png'),
    'text file named .jpg':         (_check(lambda d, a: (a/'images'/'ISIC_0000002.jpg').write_text('hello')), 2, 'ISIC_0000002.jpg: not an image'),
    'unexpected file':              (_check(lambda d, a: (a/'images'/'notes.docx').write_text('x')), 2, "notes.docx: not an image file (extension '.docx')"),
    'CMYK jpeg':                    (_check(lambda d, a: Image.open(a/'images'/'ISIC_0000002.jpg').convert('CMYK').save(a/'images'/'ISIC_0000002.jpg')), 0, ''),
    'upper-case extension':         (_check(lambda d, a: (a/'images'/'ISIC_0000002.jpg').rename(a/'images'/'ISIC_0000002.JPG')), 0, ''),
    'unicode and spaces in names':  (_check(lambda d, a: [(a/'images'/'ISIC_0000002.jpg').rename(a/'images'/'läsion 2 ü.jpg'),
                                                          (a/'masks'/'ISIC_0000002_segmentation.png').rename(a/'masks'/'läsion 2 ü_segmentation.png')]), 0, ''),
    'broken symlink':               (_check(lambda d, a: [(a/'images'/'ISIC_0000002.jpg').unlink(), (a/'images'/'ISIC_0000002.jpg').symlink_to(d/'gone.jpg')]), 2, 'ISIC_0000002.jpg: file not found'),
    'duplicate image ID':           (_check(lambda d, a: Image.open(a/'images'/'ISIC_0000002.jpg').save(a/'images'/'ISIC_0000002.png')), 2, "same image ID 'ISIC_0000002'"),
    'image without mask':           (_check(lambda d, a: _rm(a/'masks'/'ISIC_0000002_segmentation.png')), 2, 'missing masks for 1 images: ISIC_0000002'),
    'mask without image':           (_check(lambda d, a: _rm(a/'images'/'ISIC_0000002.jpg')), 2, 'missing images for 1 masks: ISIC_0000002'),
    'mask of another size':         (_check(lambda d, a: Image.new('L', (31, 17)).save(a/'masks'/'ISIC_0000002_segmentation.png')), 2, 'ISIC_0000002_segmentation.png: mask is 31x17 but its image is'),
    'mask with grey levels':        (_check(lambda d, a: _grey(a/'masks'/'ISIC_0000002_segmentation.png')), 2, 'ISIC_0000002_segmentation.png: mask has 3 distinct values'),
    'decompression bomb':           (_check(lambda d, a: [_rm(a/'images'/'ISIC_0000002.jpg'), bomb_png(a/'images'/'ISIC_0000002.png')]), 2, "ISIC_0000002.png: too many pixels for PIL's decompression-bomb limit"),
    'EXIF mask of stored pixels':   (_check(lambda d, a: [exif_jpg(a/'images'/'ISIC_0000002.jpg'), Image.new('L', (64, 48)).save(a/'masks'/'ISIC_0000002_segmentation.png')]), 2, 'EXIF orientation 6 (rotated 90°) is read upright as 48x64'),
    'EXIF mask of upright image':   (_check(lambda d, a: [exif_jpg(a/'images'/'ISIC_0000002.jpg'), Image.new('L', (48, 64)).save(a/'masks'/'ISIC_0000002_segmentation.png')]), 0, 'warning: ' ),
    'EXIF square image':            (_check(lambda d, a: [exif_jpg(a/'images'/'ISIC_0000002.jpg', (40, 40)), Image.new('L', (40, 40)).save(a/'masks'/'ISIC_0000002_segmentation.png')]), 0, 'check that it was drawn on the upright image'),
    'RGB mask (scorer refuses)':    (_check(lambda d, a: Image.open(a/'masks'/'ISIC_0000002_segmentation.png').convert('RGB').save(a/'masks'/'ISIC_0000002_segmentation.png')), 0, 'not single-channel (greyscale)'),
    '0/1 mask (scorer: empty)':     (_check(lambda d, a: Image.fromarray(mask_of(a/'masks')).save(a/'masks'/'ISIC_0000002_segmentation.png')), 0, 'the ISIC scorer reads this mask as empty'),
    # check: folders and flags
    'empty images folder':          (lambda d: [(d/'e'/'images').mkdir(parents=True), (d/'e'/'masks').mkdir(), ['check', '--data', d/'e']][-1], 2, 'images: empty folder'),
    'missing data folder':          (lambda d: ['check', '--data', d/'nowhere'], 2, 'nowhere: no such folder'),
    'data is a file':               (lambda d: [(d/'f.txt').write_text('x'), ['check', '--data', d/'f.txt']][-1], 2, 'f.txt: no such folder'),
    'named pipe among the images':  (_check(lambda d, a: os.mkfifo(a/'images'/'ISIC_0000009.jpg')), 2, 'ISIC_0000009.jpg: not a regular file'),
    'predict --bs -1':              (lambda d: [*_predict_with(member(d), d), '--bs', '-1'], 2, 'bs must be a whole number of at least 1'),
    'predict --out equal to --images': (lambda d: ['predict', '--model', member(d), '--images', pairs(d)/'images', '--out', d/'data'/'images'], 2, 'is the --images folder or inside it'),
    'check without a folder':       (lambda d: ['check'], 2, 'give --data DIR, or --images DIR and --masks DIR'),
    'check --images without --masks': (lambda d: ['check', '--images', pairs(d)/'images'], 2, 'give the masks folder too (--masks DIR)'),
    # evaluate
    'evaluate --csv is a folder':   (_evaluate(lambda d, t, p: (d/'out').mkdir(), '--csv', 'OUT'), 2, 'out: is a folder; --csv takes the name of a file'),
    'evaluate --csv under a file':  (_evaluate(lambda d, t, p: (d/'afile').write_text('x'), '--csv', 'AFILE/s.csv'), 2, 'afile'),
    'evaluate missing truth folder': (lambda d: ['evaluate', '--truth', d/'nowhere', '--pred', d], 2, 'nowhere: no such folder'),
    'evaluate missing prediction':  (_evaluate(lambda d, t, p: _rm(p/'ISIC_0000002_segmentation.png')), 2, 'pass --missing-as-empty to score them'),
    'evaluate extra prediction':    (_evaluate(lambda d, t, p: shutil.copy(p/'ISIC_0000002_segmentation.png', p/'ISIC_0000009_segmentation.png')), 2, 'have no ground truth'),
    'evaluate prediction size':     (_evaluate(lambda d, t, p: Image.new('L', (10, 10)).save(p/'ISIC_0000002_segmentation.png')), 2, 'ISIC_0000002_segmentation.png: prediction is 10x10'),
    'evaluate zero-byte prediction': (_evaluate(lambda d, t, p: (p/'ISIC_0000002_segmentation.png').write_bytes(b'')), 2, 'ISIC_0000002_segmentation.png: not an image'),
    'evaluate RGB prediction':      (_evaluate(lambda d, t, p: Image.open(p/'ISIC_0000002_segmentation.png').convert('RGB').save(p/'ISIC_0000002_segmentation.png')), 2, 'not single-channel (greyscale) 8-bit but PIL mode RGB'),
    'evaluate 16-bit prediction':   (_evaluate(lambda d, t, p: Image.fromarray(mask_of(p).astype(np.uint16)*65535).save(p/'ISIC_0000002_segmentation.png')), 2, 'not single-channel (greyscale) 8-bit but PIL mode I'),
    'evaluate palette prediction':  (_evaluate(lambda d, t, p: Image.fromarray(mask_of(p), 'P').save(p/'ISIC_0000002_segmentation.png')), 2, 'but PIL mode P'),
    'evaluate 0/1 prediction':      (_evaluate(lambda d, t, p: Image.fromarray(mask_of(p)).save(p/'ISIC_0000002_segmentation.png')), 0, 'warning:'),
    'evaluate --lenient RGB':       (_evaluate(lambda d, t, p: Image.open(p/'ISIC_0000002_segmentation.png').convert('RGB').save(p/'ISIC_0000002_segmentation.png'), '--lenient'), 0, ''),
    # classify-evaluate: CSVs
    'Task 3 valid CSVs':            (lambda d: ['classify-evaluate', *_flags(csvs(d, T3_TRUTH, T3_PRED))], 0, ''),
    'Task 3 BOM in header':         (lambda d: ['classify-evaluate', *_flags(csvs(d, '\ufeff' + T3_TRUTH, T3_PRED))], 0, ''),
    'Task 3 --truth is a folder':   (lambda d: ['classify-evaluate', '--truth', d, '--pred', csvs(d, T3_TRUTH, T3_PRED)[1]], 2, 'is a folder, not a CSV file'),
    'Task 3 missing CSV':           (lambda d: ['classify-evaluate', '--truth', d/'gone.csv', '--pred', csvs(d, T3_TRUTH, T3_PRED)[1]], 2, 'gone.csv: file not found'),
    'Task 3 empty CSV':             (lambda d: ['classify-evaluate', *_flags(csvs(d, '', T3_PRED))], 2, 'truth.csv: not a CSV file'),
    'Task 3 NaN':                   (lambda d: ['classify-evaluate', *_flags(csvs(d, T3_TRUTH, T3_PRED.replace('0.8', '')))], 2, 'pred.csv: missing values for images'),
    'Task 3 value outside [0, 1]':  (lambda d: ['classify-evaluate', *_flags(csvs(d, T3_TRUTH, T3_PRED.replace('0.8', '1.8')))], 2, 'pred.csv: values outside [0, 1]'),
    'Task 3 wrong separator':       (lambda d: ['classify-evaluate', *_flags(csvs(d, T3_TRUTH, T3_PRED.replace(',', ';')))], 2, "pred.csv: no 'image' column"),
    'Task 3 duplicate images':      (lambda d: ['classify-evaluate', *_flags(csvs(d, T3_TRUTH, T3_PRED + 'ISIC_0000002,0.5,0.5\n'))], 2, 'pred.csv: duplicate images ISIC_0000002'),
    'Task 3 missing class column':  (lambda d: ['classify-evaluate', *_flags(csvs(d, T3_TRUTH, 'image,MEL\nISIC_0000001,1\nISIC_0000002,0\n'))], 2, "pred.csv: missing class columns ['NV']"),
    'Task 3 not UTF-8':             (lambda d: ['classify-evaluate', '--truth', _latin1(d), '--pred', csvs(d, T3_TRUTH, T3_PRED)[1]], 2, 'latin1.csv: not a CSV file'),
    # train, classify-train, predict
    'train into a finished model':  (lambda d: [(d/'m').mkdir(), (d/'m'/'config.json').write_text('{}'), ['train', '--data', d, '--out', d/'m']][-1], 2, 'holds a finished model; train it again from scratch with --restart'),
    'train into a finished ensemble': (lambda d: [(d/'m').mkdir(), (d/'m'/'ensemble.json').write_text('{}'), ['train', '--data', d, '--out', d/'m', '--folds', '3']][-1], 2, 'holds a finished ensemble'),
    'classify-train into a finished classifier': (lambda d: [(d/'c').mkdir(), (d/'c'/'classifier.json').write_text('{}'),
                                     ['classify-train', '--images', d, '--labels', d/'l.csv', '--out', d/'c']][-1], 2, 'holds a finished classifier'),
    'train --folds 1':              (lambda d: ['train', '--data', d, '--out', d/'m', '--folds', '1'], 2, '--folds 1: an ensemble needs at least 2 folds'),
    'train on a missing folder':    (lambda d: ['train', '--data', d/'nowhere', '--out', d/'m'], 2, 'nowhere: no such folder'),
    'predict with no model':        (lambda d: ['predict', '--model', d, '--images', pairs(d)/'images', '--out', d/'o'], 2, 'neither an ensemble folder'),
    'predict with a damaged config': (lambda d: [(d/'m').mkdir(), (d/'m'/'model.pkl').write_bytes(b'x'), (d/'m'/'config.json').write_text('{"arch":'),
                                     ['predict', '--model', d/'m', '--images', pairs(d)/'images', '--out', d/'o']][-1], 2, 'config.json: damaged'),
    'predict with a missing config': (lambda d: [(d/'m').mkdir(), (d/'m'/'model.pkl').write_bytes(b'x'),
                                     ['predict', '--model', d/'m', '--images', pairs(d)/'images', '--out', d/'o']][-1], 2, 'config.json: missing'),
    'predict with threshold null':  (lambda d: _predict_with(member(d, threshold=None), d), 2, 'threshold None is not a number in (0, 1)'),
    'predict with threshold 2.0':   (lambda d: _predict_with(member(d, threshold=2.0), d), 2, 'threshold 2.0 is not a number in (0, 1)'),
    'predict with a swapped pickle': (lambda d: _predict_with(member(d, model_sha256='0'*64), d), 2, 'refusing to unpickle it'),
    'predict with a member outside its folder': (lambda d: _predict_with(outside_member(d), d), 2, "member '../m' lies outside the folder"),
    'train --bs 0':                 (lambda d: ['train', '--data', pairs(d), '--out', d/'m', '--bs', '0'], 2, 'bs must be at least 1, got [0]'),
}

def _flags(tp): return ['--truth', tp[0], '--pred', tp[1]]

def _latin1(d:Path)->Path:
    (d/'latin1.csv').write_bytes('image,MEL,NV\nISIC_0000001,1,0\nISIC_ä,0,1\n'.encode('latin-1')); return d/'latin1.csv'

def _argv(d:Path, name:str)->list:
    argv = [str(a) for a in CORPUS[name][0](d)]
    return [a.replace('AFILE', str(d/'afile')).replace('OUT', str(d/'out')) if a.startswith(('AFILE', 'OUT')) else a for a in argv]

def test_corpus_size(): assert len(CORPUS) >= 45

@pytest.mark.parametrize('name', list(CORPUS))
def test_case(name, tmp_path, capsys):
    "In process, through `main`: the expected status, at most one error line naming the file, no traceback"
    argv, (_, status, expected) = _argv(tmp_path, name), CORPUS[name]
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == status, (rc, err)
    assert 'Traceback' not in err and 'Traceback' not in out
    lines = err.strip().splitlines()
    if status: assert len([l for l in lines if ': error: ' in l]) == 1 and lines[-1].startswith(f'lesion_fastai {argv[0]}: error: '), err
    else: assert not any(': error: ' in l for l in lines), err
    assert all(l.startswith(f'lesion_fastai {argv[0]}: ') for l in lines), err        # every line is one of ours
    assert expected in err, (expected, err)

def test_lenient_says_so(tmp_path, capsys):
    assert main(_argv(tmp_path, 'evaluate --lenient RGB')) == 0
    assert "--lenient reading: not the official scorer's numbers" in capsys.readouterr().out

def test_interrupt(monkeypatch, capsys):
    "Ctrl-C in a command: one line, status 130, no traceback"
    def cli_check(data:str=None):
        "Stand-in for a command that the user interrupts"
        raise KeyboardInterrupt
    monkeypatch.setitem(cli.cli_parser.__globals__, 'COMMANDS', [cli.cli_command()(cli_check)])
    assert main(['check']) == 130
    err = capsys.readouterr().err
    assert err == f'lesion_fastai check: {INTERRUPTED}\n', err

def test_traceback_switch(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv('LESION_FASTAI_TRACEBACK', '1')
    assert main(['check', '--data', str(tmp_path/'nowhere')]) == 2
    err = capsys.readouterr().err
    assert 'Traceback' in err and err.strip().splitlines()[-1].startswith('lesion_fastai check: error: ')

def test_version(capsys):
    import lesion_fastai
    with pytest.raises(SystemExit) as e: main(['--version'])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f'lesion_fastai {lesion_fastai.__version__}'

# ---------------------------------------------------------------- the installed script

SCRIPT_CASES = ('decompression bomb', 'evaluate RGB prediction', 'broken symlink',      # these import fastai (about 6 s each)
                'evaluate --csv is a folder', 'Task 3 --truth is a folder', 'train into a finished model', 'check without a folder')

def test_installed_script(tmp_path):
    "A representative subset through the installed `lesion_fastai` script (in parallel): same status, no traceback"
    runs = {}
    for i, name in enumerate(SCRIPT_CASES):
        (d := tmp_path/str(i)).mkdir()
        runs[name] = subprocess.Popen([EXE, *_argv(d, name)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, p in runs.items():
        out, err = p.communicate(timeout=300)
        assert p.returncode == CORPUS[name][1] and 'Traceback' not in err, (name, p.returncode, err)
        assert CORPUS[name][2] in err, (name, err)

def _ctrl_c_on():
    "In the child before it starts: SIGINT back to its default, as a terminal's Ctrl-C finds it"
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def test_installed_script_interrupted(tmp_path):
    "Ctrl-C while `train` works: 'interrupted: run the same command again to resume', status 130, no traceback"
    data = pairs(tmp_path)
    p = subprocess.Popen([EXE, 'train', '--data', data, '--out', tmp_path/'m', '--pretrained', 'none', '--minutes', '1', '--k', '3', '--size', '64', '--bs', '2'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'},
                         preexec_fn=_ctrl_c_on)  # a test run started in the background would pass SIGINT on ignored
    p.stdout.readline()                       # the first progress line: the command is running
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and err.strip().splitlines()[-1] == f'lesion_fastai train: {INTERRUPTED}', err
    assert 'Traceback' not in err

def test_readme_lists_every_case():
    "The README's table ('What a bad input gets') names every case of the corpus"
    readme = (Path(__file__).resolve().parents[1]/'README.md').read_text()
    assert [n for n in CORPUS if f'| {n} |' not in readme.replace('\\|', '|')] == []

def test_model_folder_version_checked(tmp_path):
    "A model folder written by another version warns on load, naming both versions; a damaged config is refused"
    import warnings, lesion_fastai
    from lesion_fastai.learner.folder import read_config
    from lesion_fastai.config import LesionDataError, LesionDataWarning
    (f := tmp_path/'config.json').write_text(json.dumps({'lesion_fastai': '0.0.1', 'arch': 'x'}))
    with pytest.warns(LesionDataWarning, match=f"written by an older lesion_fastai, 0.0.1; this is {lesion_fastai.__version__}"):
        assert read_config(f, ('arch',))['arch'] == 'x'
    f.write_text(json.dumps({'lesion_fastai': lesion_fastai.__version__}))
    with warnings.catch_warnings(): warnings.simplefilter('error'); read_config(f)       # this version: silent
    f.write_text('{"lesion_fastai": ')
    with pytest.raises(LesionDataError, match='config.json: damaged'): read_config(f)
