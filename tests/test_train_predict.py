"Train and predict as a user does: the CLI in fresh processes, masks the official scorer accepts unchanged."
import json, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from lesion_fastai.demo import make_demo_set
import zipfile
from lesion_fastai.seg.predict import predict_folder, load_model
from lesion_fastai.learner.card import card

EXE = str(Path(sys.executable).with_name('lesion_fastai'))

def _run(*args):
    res = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return res

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A tiny model trained by `lesion_fastai train` on ISIC-named demo images"
    root = tmp_path_factory.mktemp('tp')
    make_demo_set(root/'data', n=12, prefix='ISIC_000')            # ISIC_0000000 …: the scorer's naming
    res = _run('train', '--data', root/'data', '--out', root/'model', '--size', 64, '--epochs', 2, '--bs', 4, '--lr', 2e-3, '--valid-fold', 0)
    assert 'random initialisation' in res.stdout and 'validation thresholded Jaccard' in res.stdout
    return root

def test_model_folder(trained):
    m = trained/'model'
    for f in ('model.pkl', 'config.json', 'loss.png', 'history.csv', 'decision.csv'): assert (m/f).exists(), f
    cfg = json.loads((m/'config.json').read_text())
    assert cfg['size'] == 64 and cfg['classes'] == ['background', 'lesion'] and cfg['pretrained_weights'] is None
    assert 0.3 <= cfg['threshold'] <= 0.7 and len(cfg['valid']['ids']) == 3
    assert cfg['tta'] and load_model(m).views == (0, 2, 4, 6)                    # TTA over the four flips

def test_model_card(trained):
    "The model card: written before config.json, its figures those of the config, read back by `card`"
    m = trained/'model'
    cfg, c, text = json.loads((m/'config.json').read_text()), card(m), (m/'README.md').read_text()
    assert (m/'README.md').stat().st_mtime_ns <= (m/'config.json').stat().st_mtime_ns
    assert c['kind'] == 'segmentation model' and c['model']['tta_views'] == [0, 2, 4, 6] and c['data']['n_images'] == 12
    assert c['data']['folder'] == str((trained/'data'/'images').resolve()) and c['versions']['fastai']
    assert c['validation']['scores']['threshold_jaccard']['value'] == round(cfg['valid']['threshold_jaccard'], 6)
    assert f"| threshold jaccard | {cfg['valid']['threshold_jaccard']:.4f} | — |" in text
    assert text.rstrip().endswith('**Not a medical device.**') and 'Trained on 12 images' in text

def test_predict_fresh_process_identical(trained, tmp_path):
    "Masks from a fresh `lesion_fastai predict` process equal those predicted here from the reloaded export"
    _run('predict', '--model', trained/'model', '--images', trained/'data'/'images', '--out', trained/'pred')
    here = predict_folder(load_model(trained/'model', runtime='auto'), trained/'data'/'images', tmp_path/'pred',  # as `predict`
                          progress=False)
    assert len(here) == 12
    for f in sorted((trained/'pred').glob('*_segmentation.png')):
        a, b = np.asarray(Image.open(f)), np.asarray(Image.open(tmp_path/'pred'/f.name))
        assert (a == b).all(), f.name
        img = Image.open(trained/'data'/'images'/f.name.replace('_segmentation.png', '.jpg'))
        assert Image.open(f).mode == 'L' and a.shape == (img.height, img.width) and set(np.unique(a)) <= {0, 255}

def test_scorer_accepts_predictions(trained):
    "isic-challenge-scoring reads our masks unchanged and agrees with `lesion_fastai evaluate`"
    scoring = pytest.importorskip('isic_challenge_scoring.segmentation')
    pred = trained/'pred'
    if not pred.exists(): _run('predict', '--model', trained/'model', '--images', trained/'data'/'images', '--out', pred)
    official = scoring.SegmentationScore.from_dir(trained/'data'/'masks', pred).macro_average
    ours = json.loads(_run('evaluate', '--truth', trained/'data'/'masks', '--pred', pred, '--json').stdout)
    for k in ('threshold_jaccard', 'jaccard', 'dice', 'accuracy', 'sensitivity', 'specificity'):
        assert abs(official[k] - ours[k]) < 1e-9, k

def test_predict_refuses_damaged_model(trained, tmp_path, capsys):
    from lesion_fastai.cli import main
    bad = tmp_path/'bad'; bad.mkdir()
    (bad/'model.pkl').write_bytes((trained/'model'/'model.pkl').read_bytes())
    (bad/'config.json').write_text('{"arch": "smp-unet34"')
    assert main(['predict', '--model', str(bad), '--images', str(trained/'data'/'images'), '--out', str(tmp_path/'o')]) == 2
    err = capsys.readouterr().err
    assert 'config.json' in err and 'damaged' in err and not (tmp_path/'o').exists()


def test_submission_zip(trained, tmp_path):
    "`predict` then `submission`: the challenge's zip of every test mask; a wrong mask names its file and writes nothing"
    pred, images = trained/'pred', trained/'data'/'images'
    if not pred.exists(): _run('predict', '--model', trained/'model', '--images', images, '--out', pred)
    res = _run('submission', '--images', images, '--masks', pred, '--out', tmp_path/'sub.zip')
    assert res.stdout.strip() == f"12 masks checked and zipped into {tmp_path/'sub.zip'}"
    with zipfile.ZipFile(tmp_path/'sub.zip') as z:
        assert z.namelist() == [f'ISIC_{i:07d}_segmentation.png' for i in range(12)]
    bad = tmp_path/'bad'
    bad.mkdir()
    for f in pred.glob('*_segmentation.png'): (bad/f.name).write_bytes(f.read_bytes())
    Image.open(bad/'ISIC_0000003_segmentation.png').convert('RGB').save(bad/'ISIC_0000003_segmentation.png')
    res = subprocess.run([EXE, 'submission', '--images', images, '--masks', bad, '--out', tmp_path/'bad.zip'],
                         capture_output=True, text=True)
    assert res.returncode == 2 and not (tmp_path/'bad.zip').exists()
    assert f"{bad/'ISIC_0000003_segmentation.png'}: PIL mode RGB" in res.stderr, res.stderr
