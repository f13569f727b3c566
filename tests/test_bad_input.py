"Bad input: every case gives one clear line naming the file (exit status 2 from the CLI), and harmless variations are read."
import subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from lesion_fastai.cli import main
from lesion_fastai.config import LesionDataError
from lesion_fastai.io import find_pairs, check_pairs, load_image, read_mask, save_mask
from lesion_fastai.data import cache_pairs

def _pair(folder, iid, size=(40, 30), lesion=True, ext='.jpg'):
    "Write a valid image/mask pair in images/ + masks/ layout"
    (folder/'images').mkdir(parents=True, exist_ok=True)
    rgb = np.full((size[1], size[0], 3), 180, np.uint8)
    m = np.zeros((size[1], size[0]), np.uint8)
    if lesion: m[size[1]//4:size[1]//2, size[0]//4:size[0]//2] = 1; rgb[m == 1] = 60
    Image.fromarray(rgb).save(folder/'images'/f'{iid}{ext}')
    save_mask(m, folder/'masks'/f'{iid}_segmentation.png')
    return m

@pytest.fixture
def data(tmp_path):
    for i in range(3): _pair(tmp_path, f'ISIC_000000{i}')
    return tmp_path

def _check(capsys, folder):
    "Run `lesion_fastai check` in process: (status, stderr lines)"
    rc = main(['check', '--data', str(folder)])
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err

def _fails(capsys, folder, *expected):
    rc, err = _check(capsys, folder)
    assert rc == 2 and len(err) == 1, err
    for e in expected: assert e in err[0], err[0]
    return err[0]

def test_valid(capsys, data):
    assert main(['check', '--data', str(data)]) == 0
    assert '3 image/mask pairs OK' in capsys.readouterr().out

def test_corrupt_image(capsys, data):
    (data/'images'/'ISIC_0000001.jpg').write_bytes(b'\xff\xd8\xff\xe0 this is not really a jpeg')
    _fails(capsys, data, 'ISIC_0000001.jpg', 'corrupt')

def test_truncated_png(capsys, data):
    f = data/'images'/'ISIC_0000001.png'
    (data/'images'/'ISIC_0000001.jpg').unlink()
    Image.fromarray((np.random.default_rng(0).random((30, 40, 3))*255).astype(np.uint8)).save(f)
    f.write_bytes(f.read_bytes()[:len(f.read_bytes())//2])
    _fails(capsys, data, 'ISIC_0000001.png', 'truncated')

def test_truncated_mask(capsys, data):
    f = data/'masks'/'ISIC_0000002_segmentation.png'
    f.write_bytes(f.read_bytes()[:40])
    _fails(capsys, data, 'ISIC_0000002_segmentation.png')

def test_mask_size_differs(capsys, data):
    save_mask(np.zeros((31, 40), np.uint8), data/'masks'/'ISIC_0000001_segmentation.png')
    _fails(capsys, data, 'ISIC_0000001_segmentation.png', 'mask is 40x31 but its image is 40x30')

def test_mask_not_two_levels(capsys, data):
    m = np.zeros((30, 40), np.uint8); m[5:10, 5:10] = 255; m[20:25, 20:25] = 128
    Image.fromarray(m).save(data/'masks'/'ISIC_0000001_segmentation.png')
    _fails(capsys, data, 'ISIC_0000001_segmentation.png', '3 distinct values')

def test_mask_jpeg_compressed(capsys, data):
    "A mask saved as JPEG has ringing: more than two levels"
    m = np.zeros((30, 40), np.uint8); m[5:20, 5:30] = 255
    (data/'masks'/'ISIC_0000001_segmentation.png').unlink()
    Image.fromarray(m).save(data/'masks'/'ISIC_0000001_segmentation.jpg', quality=50)
    _fails(capsys, data, 'ISIC_0000001_segmentation.jpg', 'distinct values')

def test_missing_mask(capsys, data):
    (data/'masks'/'ISIC_0000002_segmentation.png').unlink()
    _fails(capsys, data, 'missing masks', 'ISIC_0000002')

def test_missing_image(capsys, data):
    (data/'images'/'ISIC_0000002.jpg').unlink()
    _fails(capsys, data, 'missing images', 'ISIC_0000002')

def test_duplicate_id(capsys, data):
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(data/'images'/'ISIC_0000001.png')
    _fails(capsys, data, 'ISIC_0000001', "same image ID 'ISIC_0000001'")

def test_empty_folder(capsys, tmp_path):
    (tmp_path/'images').mkdir(); (tmp_path/'masks').mkdir()
    _fails(capsys, tmp_path, 'images', 'empty folder')

def test_missing_folder(capsys, tmp_path):
    _fails(capsys, tmp_path/'nowhere', 'nowhere', 'no such folder')

def test_non_image_file(capsys, data):
    (data/'images'/'notes.docx').write_bytes(b'PK\x03\x04')
    _fails(capsys, data, 'notes.docx', 'not an image file')

def test_documentation_files_are_skipped(capsys, data):
    "The ISIC archives ship LICENSE.txt and ATTRIBUTION.txt beside the images"
    (data/'images'/'LICENSE.txt').write_text('CC-0'); (data/'images'/'.DS_Store').write_bytes(b'\0')
    assert _check(capsys, data)[0] == 0

def test_nothing_half_written(tmp_path, data):
    "A bad pair stops the cache without leaving partial files"
    save_mask(np.zeros((31, 40), np.uint8), data/'masks'/'ISIC_0000002_segmentation.png')
    with pytest.raises(LesionDataError, match='ISIC_0000002'): cache_pairs(find_pairs(data), size=32, dest=tmp_path/'cache')
    assert not [p for p in (tmp_path/'cache').iterdir() if p.name.startswith('.tmp')]
    assert not list((tmp_path/'cache').glob('ISIC_0000002*'))

def test_evaluate_missing_prediction(capsys, data, tmp_path):
    pred = tmp_path/'pred'
    save_mask(np.zeros((30, 40)), pred/'ISIC_0000000_segmentation.png')
    assert main(['evaluate', '--truth', str(data/'masks'), '--pred', str(pred)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'ISIC_0000001' in err[0] and 'ISIC_0000002' in err[0], err
    assert main(['evaluate', '--truth', str(data/'masks'), '--pred', str(pred), '--missing-as-empty', '--json']) == 0

def test_evaluate_prediction_size(capsys, data, tmp_path):
    pred = tmp_path/'pred'
    for i in range(3): save_mask(np.zeros((30, 40 if i else 41)), pred/f'ISIC_000000{i}.png')
    assert main(['evaluate', '--truth', str(data/'masks'), '--pred', str(pred)]) == 2
    assert 'ISIC_0000000.png' in capsys.readouterr().err

def test_console_script_has_no_traceback(data):
    "The installed command prints one line and exits 2, no traceback"
    (data/'images'/'ISIC_0000001.jpg').write_bytes(b'garbage')
    exe = Path(sys.executable).with_name('lesion_fastai')
    res = subprocess.run([str(exe), 'check', '--data', str(data)], capture_output=True, text=True)
    assert res.returncode == 2 and 'Traceback' not in res.stderr
    assert res.stderr.strip().startswith('lesion_fastai check: error:') and 'ISIC_0000001.jpg' in res.stderr

# Harmless variations are read, with the documented coercions.

def test_rgba_image(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(np.dstack([rgb, np.full((30, 40), 7, np.uint8)])).save(tmp_path/'a.png')
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path/'a.png')), rgb)

def test_16bit_image_and_mask(tmp_path):
    g = np.random.default_rng(2).integers(0, 65535, (30, 40)).astype(np.uint16)
    Image.fromarray(g).save(tmp_path/'g16.png')
    img = load_image(tmp_path/'g16.png')
    assert img.mode == 'RGB' and np.asarray(img)[5, 5, 0] == g[5, 5] >> 8
    m = np.zeros((30, 40), np.uint16); m[3:9, 3:9] = 65535
    Image.fromarray(m).save(tmp_path/'m16.png')
    assert read_mask(tmp_path/'m16.png').sum() == 36

def test_greyscale_image(tmp_path, capsys):
    _pair(tmp_path, 'g1')
    Image.open(tmp_path/'images'/'g1.jpg').convert('L').save(tmp_path/'images'/'g1.jpg')
    assert load_image(tmp_path/'images'/'g1.jpg').mode == 'RGB'
    assert main(['check', '--data', str(tmp_path)]) == 0

def test_exif_rotated_image(tmp_path, capsys):
    "A JPEG stored landscape with EXIF orientation 6 is read upright (portrait); its mask is drawn on the upright image"
    (tmp_path/'images').mkdir()
    stored = np.zeros((30, 40, 3), np.uint8); stored[:, :10] = 255          # bright band on the stored left edge
    exif = Image.Exif(); exif[0x0112] = 6                                   # viewer rotates 90° clockwise
    Image.fromarray(stored).save(tmp_path/'images'/'r1.jpg', exif=exif, quality=95)
    up = np.asarray(load_image(tmp_path/'images'/'r1.jpg'))
    assert up.shape == (40, 30, 3) and up[:10].mean() > 200 and up[-10:].mean() < 50   # band now on top
    save_mask(np.ones((40, 30)), tmp_path/'masks'/'r1_segmentation.png')
    assert main(['check', '--data', str(tmp_path)]) == 0

def test_layouts(tmp_path):
    "images/+masks/, ISIC *_Input + *_GroundTruth, and one folder with both"
    for i in range(2): _pair(tmp_path/'a', f'x{i}')
    isic = tmp_path/'b'
    (tmp_path/'a'/'images').rename(tmp_path/'a'/'ISIC2018_Task1-2_Training_Input')
    (tmp_path/'a'/'masks').rename(tmp_path/'a'/'ISIC2018_Task1_Training_GroundTruth')
    assert list(find_pairs(tmp_path/'a').image_id) == ['x0', 'x1']
    one = tmp_path/'one'; one.mkdir()
    for f in (tmp_path/'a').glob('*/*'): f.rename(one/f.name)
    p = check_pairs(find_pairs(one))
    assert list(p.image_id) == ['x0', 'x1'] and (p.lesion_fraction > 0).all()
