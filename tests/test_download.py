"`lesion_fastai.download` against a local mirror, with handlers that break transfers as networks and servers do."
import hashlib, io, json, os, subprocess, sys, zipfile
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from lesion_fastai.config import LesionDataError
from lesion_fastai import download
from lesion_fastai.download import ArchiveMirror, MirrorHandler, RECORD, fetch_archive, isic2018
from http.server import SimpleHTTPRequestHandler

EXE = str(Path(sys.executable).with_name('lesion_fastai'))
IDS = ['ISIC_0000000', 'ISIC_0000001']
INPUT, TRUTH = 'ISIC2018_Task1-2_Training_Input', 'ISIC2018_Task1_Training_GroundTruth'
NOTICES = {'ATTRIBUTION.txt': b'Attribution: ISIC', 'LICENSE.txt': b'CC-BY-NC'}

def _encoded(img:Image.Image, fmt:str)->bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()

def _mask()->bytes:
    m = np.zeros((24, 32), np.uint8)
    m[6:18, 8:24] = 255
    return _encoded(Image.fromarray(m), 'PNG')

def _zip(path:Path, files:dict)->Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, 'w') as z:
        for name, data in files.items(): z.writestr(name, data)
    return path

def _in(top:str, files:dict)->dict:
    return {f'{top}/{k}': v for k, v in files.items()}

def _mirror(folder:Path)->Path:
    "A miniature ISIC 2018 mirror: Task 1's training split (zips with a top folder), Task 3's (without one)"
    jpg = _encoded(Image.new('RGB', (32, 24), (150, 110, 90)), 'JPEG')
    _zip(folder/f'{INPUT}.zip', _in(INPUT, {**{f'{i}.jpg': jpg for i in IDS}, **NOTICES}))
    _zip(folder/f'{TRUTH}.zip', _in(TRUTH, {**{f'{i}_segmentation.png': _mask() for i in IDS}, **NOTICES}))
    _zip(folder/'ISIC2018_Task3_Training_Input.zip', {**{f'{i}.jpg': jpg for i in IDS}, **NOTICES})
    labels = 'image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\n' + ''.join(f'{i},0.0,1.0,0.0,0.0,0.0,0.0,0.0\n' for i in IDS)
    _zip(folder/'ISIC2018_Task3_Training_GroundTruth.zip', {'ISIC2018_Task3_Training_GroundTruth.csv': labels})
    rows = ''.join(f'{i},HAM_{n:07d},histo\n' for n, i in enumerate(IDS))
    groups = 'image,lesion_id,diagnosis_confirm_type\n' + rows
    (folder/'ISIC2018_Task3_Training_LesionGroupings.csv').write_text(groups)
    return folder

def _handler(cut:bool=False, ranges:bool=True):
    "A mirror handler recording each request's Range header; `cut`: the first GET of a file sends half of it"
    class Handler(MirrorHandler):
        asked, done = [], set()
        def send_head(self):
            self.asked.append(self.headers.get('Range'))
            return super().send_head() if ranges else SimpleHTTPRequestHandler.send_head(self)
        def copyfile(self, source, out):
            if not cut or self.path in self.done: return super().copyfile(source, out)
            self.done.add(self.path)
            out.write(source.read(os.fstat(source.fileno()).st_size // 2))
    return Handler

def _leftovers(folder:Path)->list:
    "Every file and folder under `folder`, relative to it"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob('*'))

@pytest.fixture
def mirror(tmp_path): return _mirror(tmp_path/'mirror')

def test_resume_after_cut(tmp_path, mirror):
    "A connection cut mid-file is one line, keeps a `.part`, and the next run resumes it with a Range request"
    H, dest = _handler(cut=True), tmp_path/'a'/f'{INPUT}.zip'
    with ArchiveMirror(mirror, handler=H) as url:
        with pytest.raises(LesionDataError, match=rf'{INPUT}.zip: connection broken after \d+ of \d+ bytes; run again'):
            fetch_archive(url + dest.name, dest)
        assert _leftovers(dest.parent) == [f'{INPUT}.zip.part']
        half = (dest.parent/f'{INPUT}.zip.part').stat().st_size
        fetch_archive(url + dest.name, dest)
    assert H.asked == [None, f'bytes={half}-'] and half > 0
    assert dest.read_bytes() == (mirror/dest.name).read_bytes()
    assert _leftovers(dest.parent) == [f'{INPUT}.zip', RECORD]
    whole = dict(size=dest.stat().st_size, sha256=hashlib.sha256(dest.read_bytes()).hexdigest())
    assert json.loads((dest.parent/RECORD).read_text())[dest.name] == whole      # the resumed file's hash, all of it

def test_range_ignored_restarts(tmp_path, mirror):
    "A server that answers a resume with the whole file (200) has it written from the start, not appended"
    dest = tmp_path/'a'/f'{TRUTH}.zip'
    dest.parent.mkdir()
    dest.with_name(dest.name + '.part').write_bytes(b'stale bytes of another file')
    with ArchiveMirror(mirror, handler=_handler(ranges=False)) as url: fetch_archive(url + dest.name, dest)
    assert dest.read_bytes() == (mirror/dest.name).read_bytes()

def test_part_too_long_restarts(tmp_path, mirror):
    "A `.part` as long as the file gets a 416 to its resume, and the transfer starts again"
    dest = tmp_path/'a'/f'{TRUTH}.zip'
    dest.parent.mkdir()
    dest.with_name(dest.name + '.part').write_bytes(b'x' * (mirror/dest.name).stat().st_size)
    with ArchiveMirror(mirror) as url: fetch_archive(url + dest.name, dest)
    assert dest.read_bytes() == (mirror/dest.name).read_bytes()

def test_404(tmp_path, mirror):
    "A missing archive is one line naming its URL; the split's folder is not made"
    (mirror/f'{TRUTH}.zip').unlink()
    with ArchiveMirror(mirror) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv('LESION_FASTAI_ISIC_URL', url)
        with pytest.raises(LesionDataError, match=rf'{url}{TRUTH}.zip: HTTP 404'): isic2018(1, 'train', to=tmp_path/'d')
    assert _leftovers(tmp_path/'d') == ['archives', f'archives/{INPUT}.zip', f'archives/{RECORD}']

def test_wrong_hash(tmp_path, mirror):
    "An archive whose SHA-256 differs from the recorded one is refused, and nothing of it stays"
    arch = tmp_path/'d'/'archives'
    size = (mirror/f'{INPUT}.zip').stat().st_size
    arch.mkdir(parents=True)
    (arch/RECORD).write_text(json.dumps({f'{INPUT}.zip': dict(size=size, sha256='0' * 64)}))
    with ArchiveMirror(mirror) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv('LESION_FASTAI_ISIC_URL', url)
        wrong = rf'{INPUT}.zip: sha256 [0-9a-f]{{64}} from .* differs from the recorded'
        with pytest.raises(LesionDataError, match=wrong): isic2018(1, 'train', to=tmp_path/'d')
    assert _leftovers(tmp_path/'d') == ['archives', f'archives/{RECORD}']

def test_zip_slip(tmp_path, mirror):
    "A member that would land outside the extraction folder is refused before anything of the split is in place"
    _zip(mirror/f'{TRUTH}.zip', {f'{TRUTH}/ISIC_0000000_segmentation.png': b'', '../../evil.txt': b'x'})
    with ArchiveMirror(mirror) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv('LESION_FASTAI_ISIC_URL', url)
        with pytest.raises(LesionDataError, match=r"member '../../evil.txt' would be written outside"):
            isic2018(1, 'train', to=tmp_path/'d')
    assert not list(tmp_path.rglob('evil.txt'))
    assert _leftovers(tmp_path/'d'/'task1') == []

def test_interrupted_extraction(tmp_path, mirror, monkeypatch):
    "Ctrl-C midway through the extraction leaves no split folder, nor its staging folder; the next run completes it"
    write, calls = download._write_member, []
    def _stop_at_third(*args):
        calls.append(args)
        if len(calls) == 3: raise KeyboardInterrupt
        return write(*args)
    with ArchiveMirror(mirror) as url:
        monkeypatch.setenv('LESION_FASTAI_ISIC_URL', url)
        monkeypatch.setattr(download, '_write_member', _stop_at_third)
        with pytest.raises(KeyboardInterrupt): isic2018(1, 'train', to=tmp_path/'d')
        assert _leftovers(tmp_path/'d'/'task1') == []
        monkeypatch.setattr(download, '_write_member', write)
        out = isic2018(1, 'train', to=tmp_path/'d')
    assert _leftovers(out) == sorted([INPUT, TRUTH] + [f'{INPUT}/{f}' for f in (*NOTICES, *(f'{i}.jpg' for i in IDS))] +
                                     [f'{TRUTH}/{f}' for f in (*NOTICES, *(f'{i}_segmentation.png' for i in IDS))])

def test_corrupt_zip(tmp_path, mirror):
    "A downloaded file that is not a zip is one line naming it"
    (mirror/f'{TRUTH}.zip').write_bytes(b'PK\x03\x04 truncated')
    with ArchiveMirror(mirror) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv('LESION_FASTAI_ISIC_URL', url)
        with pytest.raises(LesionDataError, match=rf'{TRUTH}.zip: not a valid zip'):
            isic2018(1, 'train', to=tmp_path/'d')
    assert _leftovers(tmp_path/'d'/'task1') == []

def test_offline_refuses_internet(tmp_path, monkeypatch):
    "With LESION_FASTAI_OFFLINE=1 (set for every test) the default S3 URL is refused before any connection"
    monkeypatch.delenv('LESION_FASTAI_ISIC_URL', raising=False)
    with pytest.raises(LesionDataError, match=r'https://isic-challenge-data\.s3\.amazonaws\.com/.*: downloads are off'):
        isic2018(1, 'train', to=tmp_path/'d')
    assert not (tmp_path/'d'/'task1').exists()

def test_task3_layout(tmp_path, mirror, monkeypatch):
    "Task 3's training split: the images (from a zip without a top folder), the ground-truth CSV and the groupings"
    with ArchiveMirror(mirror) as url:
        monkeypatch.setenv('LESION_FASTAI_ISIC_URL', url)
        out = isic2018(3, 'train', to=tmp_path/'d')
    assert (out/'ISIC2018_Task3_Training_Input'/'ISIC_0000001.jpg').is_file()
    assert (out/'ISIC2018_Task3_Training_Input'/'LICENSE.txt').is_file()
    assert (out/'ISIC2018_Task3_Training_GroundTruth'/'ISIC2018_Task3_Training_GroundTruth.csv').is_file()
    assert (out/'ISIC2018_Task3_Training_LesionGroupings.csv').read_text().startswith('image,lesion_id')

def _run(*args, url:str):
    env = {**os.environ, 'LESION_FASTAI_ISIC_URL': url}
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=env)

@pytest.mark.slow
def test_cli_download_then_train(tmp_path, monkeypatch):
    "`train --data` reads a downloaded Task 1 split as it is (a tiny run: about 40 s on 2 cores)"
    monkeypatch.setattr(sys.modules[__name__], 'IDS', [f'ISIC_{i:07d}' for i in range(10)])
    with ArchiveMirror(_mirror(tmp_path/'mirror')) as url:
        data = _run('download', 'isic2018', '--task', 1, '--to', tmp_path/'d', url=url).stdout.strip()
    res = _run('train', '--data', data, '--out', tmp_path/'m', '--size', 64, '--epochs', 1, '--bs', 4, '--lr', 2e-3,
               '--pretrained', 'none', url='')
    assert res.returncode == 0 and res.stdout.startswith('10 pairs: 10 train'), res.stdout + res.stderr
    assert (tmp_path/'m'/'model.pkl').is_file()

def test_cli_download_then_check(tmp_path, mirror):
    "`download isic2018 --task 1` prints the folder it made, and `check --data` reads that folder as it is"
    with ArchiveMirror(mirror) as url:
        res = _run('download', 'isic2018', '--task', 1, '--to', tmp_path/'d', url=url)
    assert res.returncode == 0 and res.stdout.strip() == str(tmp_path/'d'/'task1'/'train'), res.stderr
    res = _run('check', '--data', res.stdout.strip(), url='')
    assert res.returncode == 0 and res.stdout.startswith('2 image/mask pairs OK in'), res.stdout + res.stderr

@pytest.mark.parametrize('broken', ['404', 'offline', 'cut'])
def test_cli_errors_are_one_line(tmp_path, mirror, broken):
    "A missing archive, an internet URL while offline, a cut connection: one line, status 2, no traceback"
    if broken == '404': (mirror/f'{TRUTH}.zip').unlink()
    args = ['download', 'isic2018', '--task', 1, '--split', 'train', '--to', tmp_path/'d']
    with ArchiveMirror(mirror, handler=_handler(cut=broken == 'cut')) as url:
        res = _run(*args, url='https://example.org/isic/' if broken == 'offline' else url)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith('lesion_fastai download: error: ') and 'Traceback' not in res.stderr
    assert {'404': 'HTTP 404', 'offline': 'downloads are off', 'cut': 'connection broken'}[broken] in lines[0]
    assert not (tmp_path/'d'/'task1').exists()

def test_cli_train_needs_data(tmp_path):
    "`train` with neither --data nor --images is one line and status 2 (any other layout: --images and --masks)"
    res = _run('train', '--out', tmp_path/'m', url='')
    assert res.returncode == 2, res.stderr
    assert res.stderr == 'lesion_fastai train: error: give --data DIR, or --images DIR and --masks DIR\n'
    assert not (tmp_path/'m').exists()

def test_second_process_refused(tmp_path, mirror):
    "While one process downloads an archive, a second one is refused with one line naming it (not two writers of a .part)"
    dest = tmp_path/'a'/f'{INPUT}.zip'
    hold = ("import sys, time\nfrom lesion_fastai.io import output_lock\n"
            "with output_lock(sys.argv[1], what='the other download'):\n    print('held', flush=True)\n    time.sleep(30)")
    holder = subprocess.Popen([sys.executable, '-c', hold, str(dest)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'held\n'
        with ArchiveMirror(mirror) as url, pytest.raises(LesionDataError, match='the other download'):
            fetch_archive(url + dest.name, dest)
    finally:
        holder.kill()
        holder.wait()
    assert not dest.exists() and not dest.with_name(dest.name + '.part').exists()
