"The prediction service as a client meets it: the real uvicorn server in its own process on 127.0.0.1, called over HTTP."
import base64, io, json, os, signal, socket, subprocess, sys, threading, time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from lesion_fastai.demo import make_demo_set
from lesion_fastai.seg.recipe import train_segmenter
from lesion_fastai.seg.predict import predict_folder, load_model
from lesion_fastai.seg.ensemble import Ensemble

MAX_MB = 1

def free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def served(tmp_path_factory):
    "A tiny demo model, its `predict_folder` output, and `serve_model` running it in a subprocess"
    root = tmp_path_factory.mktemp('serve')
    make_demo_set(root/'data', n=12)
    train_segmenter(root/'data', root/'model', arch='smp-unet34', sizes=(64,), epochs=1, bs=4, lr=1e-3, pretrained=False, log=lambda *a: None, progress=False)
    predict_folder(root/'model', root/'data'/'images', root/'pred', overlays=False, progress=False)
    (root/'odd').mkdir()                                       # another size, and a phone photo's EXIF rotation
    Image.open(image(root, 4)).resize((311, 207)).save(root/'odd'/'odd_size.png')
    exif = Image.Exif(); exif[0x0112] = 6
    Image.open(image(root, 6)).save(root/'odd'/'rotated.jpg', exif=exif, quality=95)
    predict_folder(root/'model', root/'odd', root/'odd_pred', overlays=False, progress=False)
    port = free_port()
    code = f"from lesion_fastai.serve import serve_model; serve_model({str(root/'model')!r}, port={port}, max_mb={MAX_MB})"
    proc, client = start_server(code, port, root/'server.log')
    yield root, client, proc
    client.close(); proc.terminate(); proc.wait(10)

def start_server(code:str, port:int, log, env=None)->tuple:
    "(process, client) of a server that `python -c code` starts on `port`, logging to `log`, once `/health` answers"
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, '-c', code], stdout=out, stderr=subprocess.STDOUT, env=env)
    client = httpx.Client(base_url=f'http://127.0.0.1:{port}', timeout=60)
    wait_ready(proc, client, log)
    return proc, client

def wait_ready(proc, client, log, seconds:float=600):
    "Return once the server of `proc` answers `/health` (its start may take minutes on a loaded machine)"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None: pytest.fail(f"server exited: {Path(log).read_text()[-2000:]}")
        try:
            if client.get('/health').status_code == 200: return
        except httpx.TransportError: time.sleep(0.1)
    pytest.fail(f"server not ready after {seconds:g} s: {Path(log).read_text()[-2000:]}")

def image(root, i:int): return root/'data'/'images'/f'demo_{i:04d}.jpg'
def reference(root, i:int)->bytes: return (root/'pred'/f'demo_{i:04d}_segmentation.png').read_bytes()
def post_file(client, f): return client.post('/predict', files={'file': (f.name, f.read_bytes(), 'image/jpeg')})

def test_health_docs_and_startup_line(served):
    root, client, proc = served
    h = client.get('/health').json()
    assert h['ready'] is True and h['model'] == 'model' and h['members'] == ['smp-unet34@64'] and h['tta'] is True
    assert client.get('/docs').status_code == 200
    body = client.get('/openapi.json').json()['paths']['/predict']['post']['requestBody']['content']
    assert set(body) == {'multipart/form-data', 'application/json'}
    line = next(l for l in (root/'server.log').read_text().splitlines() if l.startswith('Serving'))  # after fastai's warning
    assert line.startswith('Serving model: Ensemble(1 members') and '/docs' in line, line

@pytest.mark.parametrize('i', [0, 5, 11])
def test_multipart_mask_is_predicts_mask(served, i):
    "The mask equals the file `predict_folder` wrote for the same image, byte for byte and so pixel for pixel"
    root, client, _ = served
    r = post_file(client, image(root, i))
    assert r.status_code == 200, r.text
    a, png = r.json(), base64.b64decode(r.json()['mask_png'])
    assert png == reference(root, i)
    m, size = Image.open(io.BytesIO(png)), Image.open(image(root, i)).size
    assert m.mode == 'L' and m.size == size == (a['width'], a['height'])
    assert (np.asarray(m) == np.asarray(Image.open(root/'pred'/f'demo_{i:04d}_segmentation.png'))).all()
    row = pd.read_csv(root/'pred'/'predictions.csv', index_col='image_id').loc[a['image_id']]
    assert a['lesion_fraction'] == pytest.approx(row.lesion_fraction, abs=1e-12) and a['qc_flag'] == row.qc_flag
    assert a['disagreement'] == pytest.approx(row.disagreement, abs=1e-9) and a['ms'] > 0 and a['model'] == 'model'

@pytest.mark.parametrize('name,size', [('odd_size.png', (311, 207)), ('rotated.jpg', (192, 256))])
def test_other_sizes_and_exif(served, name, size):
    "Any size and an EXIF-rotated photo: the mask `predict_folder` writes, at the upright image's size"
    root, client, _ = served
    a = post_file(client, root/'odd'/name).json()
    png = base64.b64decode(a['mask_png'])
    assert png == (root/'odd_pred'/name.replace(name[name.rindex('.'):], '_segmentation.png')).read_bytes()
    assert Image.open(io.BytesIO(png)).size == size == (a['width'], a['height'])

def test_json_base64_same_answer(served):
    root, client, _ = served
    f = image(root, 5)
    a = client.post('/predict', json={'image': base64.b64encode(f.read_bytes()).decode(), 'name': f.name}).json()
    assert base64.b64decode(a['mask_png']) == reference(root, 5) and a['image_id'] == 'demo_0005'

def _png(img): b = io.BytesIO(); img.save(b, format='PNG'); return b.getvalue()
def _chunks(n):
    for _ in range(n): yield bytes(2**16)

BAD = {  # kind: (request, expected status, words in the one-line detail)
    'not an image':    (lambda f: dict(files={'file': ('notes.jpg', b'hello, not a picture')}), 422, 'notes.jpg: not an image'),
    'truncated image': (lambda f: dict(files={'file': (f.name, f.read_bytes()[:2000])}), 422, 'truncated'),
    'empty file':      (lambda f: dict(files={'file': (f.name, b'')}), 400, 'empty'),
    'empty body':      (lambda f: dict(content=b'', headers={'content-type': 'application/json'}), 400, 'empty request body'),
    'too large':       (lambda f: dict(files={'file': ('big.jpg', bytes(MAX_MB*2**20 + 10))}), 413, 'limit'),
    'too large, chunked': (lambda f: dict(content=_chunks(40), headers={'content-type': 'application/json'}), 413, 'limit'),
    'wrong field':     (lambda f: dict(files={'image': (f.name, f.read_bytes())}), 422, "no multipart field 'file'"),
    'text field':      (lambda f: dict(data={'file': 'abc'}, files={'other': ('x', b'x')}), 422, 'is text'),
    'bad base64':      (lambda f: dict(json={'image': 'this is %% not base64'}), 422, 'not valid base64'),
    'not JSON':        (lambda f: dict(content=b'{"image": ', headers={'content-type': 'application/json'}), 400, 'not valid JSON'),
    'JSON 100,000 deep': (lambda f: dict(content=b'[' * 100_000 + b']' * 100_000, headers={'content-type': 'application/json'}),
                          400, 'nested too deeply'),
    'JSON, no image':  (lambda f: dict(json={'file': 'abc'}), 422, '{"image"'),
    'raw bytes':       (lambda f: dict(content=f.read_bytes(), headers={'content-type': 'image/jpeg'}), 415, 'multipart'),
    'too many pixels': (lambda f: dict(files={'file': ('huge.png', _png(Image.new('1', (9000, 9000))))}), 413, 'megapixel limit'),
    'decompression bomb': (lambda f: dict(files={'file': ('bomb.png', _png(Image.new('1', (20000, 20000))))}), 413, 'decompression bomb'),
}

@pytest.mark.parametrize('kind', list(BAD))
def test_bad_upload_then_good(served, kind):
    "Each bad upload gets a 4xx with a one-line reason, and the very next good upload is served as usual"
    root, client, proc = served
    make, status, words = BAD[kind]
    r = client.post('/predict', **make(image(root, 1)))
    detail = r.json()['detail']
    assert r.status_code == status and words in detail and '\n' not in detail and len(detail) < 300, (r.status_code, detail)
    good = post_file(client, image(root, 2))
    assert good.status_code == 200 and base64.b64decode(good.json()['mask_png']) == reference(root, 2)
    assert proc.poll() is None

def test_concurrent_requests_all_right(served):
    "16 requests from 8 clients at once: all answered, each with its own image's mask"
    root, client, _ = served
    def one(i):
        with httpx.Client(base_url=client.base_url, timeout=120) as c: return i, post_file(c, image(root, i))
    with ThreadPoolExecutor(8) as ex: res = list(ex.map(one, [i % 12 for i in range(16)]))
    for i, r in res: assert r.status_code == 200 and base64.b64decode(r.json()['mask_png']) == reference(root, i), i

def test_batched_answers_are_predicts_masks(served):
    "48 requests from 12 clients at once: gathered into shared forward passes, each answer still predict's own PNG"
    root, client, _ = served
    start = threading.Barrier(12)
    def one(k):
        with httpx.Client(base_url=client.base_url, timeout=120) as c:
            if k < 12: start.wait()
            return k % 12, post_file(c, image(root, k % 12))
    with ThreadPoolExecutor(12) as ex: res = list(ex.map(one, range(48)))
    for i, r in res: assert r.status_code == 200 and base64.b64decode(r.json()['mask_png']) == reference(root, i), i
    h = client.get('/health').json()
    assert h['max_batch'] == 8 and max(map(int, h['batches'])) > 1, h['batches']       # some passes had several images
    assert sum(int(k)*n for k, n in h['batches'].items()) >= 48

def test_model_card(served):
    "GET /model: the folder's model card (README.md and its front matter), its config without the validation IDs"
    root, client, _ = served
    card = client.get('/model').json()
    assert card['intended_use'].startswith('Research on dermoscopy images') and card['notice'] == 'Not a medical device.'
    assert card['classifier'] is None
    seg = card['segmenter']
    assert seg['folder'] == 'model' and seg['file'] == 'config.json' and '**Not a medical device.**' in seg['readme']
    assert seg['card']['kind'] == 'segmentation model' and seg['card']['name'] == 'model'
    assert seg['settings']['arch'] == 'smp-unet34' and seg['settings']['size'] == 64 and '"ids"' not in json.dumps(seg)
    from lesion_fastai.service import served_card
    assert json.loads(json.dumps(served_card(root/'model')['segmenter'])) == seg   # the answer, computed in process

def test_page_is_served(served):
    r = served[1].get('/')
    assert r.status_code == 200 and r.headers['content-type'].startswith('text/html') and 'not a medical device' in r.text

def test_ensemble_answer_has_member_agreement(served):
    "An ensemble's answer adds the members' mutual Jaccard (in process: the app is the same)"
    from fastapi.testclient import TestClient
    from lesion_fastai.serve import make_app
    root = served[0]
    m = load_model(root/'model')
    ens = Ensemble.combine(m, m)                                       # the model's own TTA, as `predict` used
    a = TestClient(make_app(ens, name='pair')).post('/predict', files={'file': ('x.jpg', image(root, 3).read_bytes())}).json()
    assert a['member_jaccard'] == 1 and a['model'] == 'pair' and 0 <= a['disagreement'] <= 1
    assert base64.b64decode(a['mask_png']) == reference(root, 3)      # two copies of one model: its own mask

def raw_request(port:int, headers:dict, body:bytes=b'')->socket.socket:
    "A connection that has sent a POST /predict's headers and `body`, which may be less than its Content-Length"
    s = socket.create_connection(('127.0.0.1', port), timeout=20)
    lines = ''.join(f'{k}: {v}\r\n' for k, v in {'Host': 'x', **headers}.items())
    s.sendall(f'POST /predict HTTP/1.1\r\n{lines}\r\n'.encode() + body)
    return s

def read_all(s:socket.socket)->bytes:
    "What the server sends until it closes the connection"
    out = b''
    while chunk := s.recv(65536): out += chunk
    return out

def no_trace(log)->bool: return not any(w in log.read_text() for w in ('Traceback', 'ClientDisconnect', 'Exception'))

def test_client_gone_mid_body(served):
    "A client that hangs up halfway through its upload: no traceback on the console, and the next request is served"
    root, client, proc = served
    port = client.base_url.port
    for ctype in ('multipart/form-data; boundary=x', 'application/json'):
        s = raw_request(port, {'Content-Type': ctype, 'Content-Length': 500_000}, b'x' * 1000)
        time.sleep(0.3)
        s.close()
    time.sleep(0.5)
    assert no_trace(root/'server.log'), (root/'server.log').read_text()[-3000:]
    assert client.get('/health').json()['ready'] and post_file(client, image(root, 2)).status_code == 200

TOKEN = 's3cret-token'
AUTH = {'Authorization': f'Bearer {TOKEN}'}

@pytest.fixture(scope='module')
def guarded(served, tmp_path_factory):
    "The same model served with a token (from the environment), a 1 s body timeout, 1 worker and 2 places to wait"
    root, log = served[0], tmp_path_factory.mktemp('guarded')/'server.log'
    port = free_port()
    code = (f"from lesion_fastai.serve import serve_model; serve_model({str(root/'model')!r}, port={port}, "
            f"body_timeout=1, workers=1, queue=2)")
    proc, client = start_server(code, port, log, env={**os.environ, 'LESION_FASTAI_TOKEN': TOKEN})
    yield root, client, proc, log
    client.close(); proc.terminate(); proc.wait(10)

def test_token_required_but_not_for_health(guarded):
    root, client, proc, log = guarded
    f = image(root, 3)
    files = {'file': (f.name, f.read_bytes())}
    for headers in ({}, {'Authorization': 'Bearer wrong'}, {'Authorization': f'Basic {TOKEN}'}, {'Authorization': 'Bearer'}):
        r = client.post('/predict', files=files, headers=headers)
        assert r.status_code == 401 and r.headers['www-authenticate'] == 'Bearer' and 'token' in r.json()['detail'], headers
    r = client.post('/predict', files=files, headers=AUTH)
    assert r.status_code == 200 and base64.b64decode(r.json()['mask_png']) == reference(root, 3)
    assert client.get('/health').status_code == 200 and client.get('/docs').status_code == 200
    assert 'token required' in next(l for l in log.read_text().splitlines() if l.startswith('Serving'))

def test_stalled_body_gets_408_and_closed(guarded):
    "A body that stops arriving: 408 after the timeout (1 s here), the connection closed; others are served meanwhile"
    root, client, proc, log = guarded
    t0 = time.monotonic()
    s = raw_request(client.base_url.port, {**AUTH, 'Content-Type': 'application/json', 'Content-Length': 1000}, b'{"im')
    assert client.get('/health').status_code == 200
    answer = read_all(s)                                         # returns only once the server closes the connection
    s.close()
    assert answer.startswith(b'HTTP/1.1 408') and b'not received within 1 s' in answer, answer
    assert 0.9 < time.monotonic() - t0 < 10
    s = raw_request(client.base_url.port, {'Content-Type': 'application/json', 'Content-Length': 1000}, b'{"im')
    assert s.recv(65536).startswith(b'HTTP/1.1 401')             # the token is checked before waiting for the body
    s.close()
    assert no_trace(log)

def test_fifty_at_once_bounded(guarded):
    "50 requests at once on 1 worker and 2 places to wait: each one a right mask or 503 with Retry-After, nothing else"
    root, client, proc, log = guarded
    start = threading.Barrier(50)
    def one(i):
        with httpx.Client(base_url=client.base_url, timeout=120, headers=AUTH) as c:
            start.wait()
            return i, post_file(c, image(root, i))
    with ThreadPoolExecutor(50) as ex: res = list(ex.map(one, [i % 12 for i in range(50)]))
    codes = [r.status_code for _, r in res]
    assert set(codes) <= {200, 503} and codes.count(200) >= 1 and codes.count(503) >= 1, codes
    for i, r in res:
        if r.status_code == 200: assert base64.b64decode(r.json()['mask_png']) == reference(root, i)
        else: assert r.headers['retry-after'] == '1' and r.json()['detail'].startswith('busy:')
    assert client.get('/health').json()['ready'] and post_file(client, image(root, 1)).status_code == 401
    assert client.post('/predict', files={'file': ('a.jpg', image(root, 1).read_bytes())}, headers=AUTH).status_code == 200
    assert no_trace(log)

def test_request_during_shutdown_answered(guarded):
    "SIGTERM while an upload is arriving: that request is still answered, then the server exits cleanly (runs last)"
    root, client, proc, log = guarded
    f = image(root, 4)
    body = b'{"name": "%s", "image": "%s"}' % (f.name.encode(), base64.b64encode(f.read_bytes()))
    s = raw_request(client.base_url.port, {**AUTH, 'Content-Type': 'application/json', 'Content-Length': len(body)}, body[:100])
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    s.sendall(body[100:])
    answer = read_all(s)
    s.close()
    head, _, payload = answer.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200'), answer[:500]
    assert base64.b64decode(json.loads(payload)['mask_png']) == reference(root, 4)
    assert proc.wait(20) in (0, -signal.SIGTERM) and no_trace(log), log.read_text()[-3000:]   # uvicorn re-raises it

def test_shut_down_app_answers_503(served):
    "Once the app's lifespan has ended, a late request gets 503 (in process: the flag the lifespan sets)"
    from fastapi.testclient import TestClient
    from lesion_fastai.serve import make_app
    app = make_app(load_model(served[0]/'model'))
    with TestClient(app) as c: assert c.get('/health').json()['ready'] is True
    r = TestClient(app).post('/predict', files={'file': ('x.jpg', image(served[0], 3).read_bytes())})
    assert r.status_code == 503 and r.json()['detail'] == 'the server is shutting down; retry later'
    assert r.headers['connection'] == 'close'

OLD = Path(__file__).parent/'fixtures'/'old_folders'
CLASSIFIED = ['ISIC_0000002', 'ISIC_0000007']

@pytest.fixture(scope='module')
def with_classifier(tmp_path_factory):
    "`lesion_fastai serve MODEL --classifier CLS` on the old-folder fixtures; predict's masks, classify-predict's report"
    if not (OLD/'VERSION').exists(): pytest.skip('fixtures not generated')
    from lesion_fastai.cls.predict import classify_folder
    root = tmp_path_factory.mktemp('classify')
    (root/'images').mkdir()
    for i in CLASSIFIED: (root/'images'/f'{i}.jpg').write_bytes((OLD/'data'/'images'/f'{i}.jpg').read_bytes())
    predict_folder(OLD/'model', root/'images', root/'pred', overlays=False, progress=False)
    rep = classify_folder(OLD/'classifier', root/'images', root/'cls', masks=root/'pred', progress=False, log=lambda *a: None)
    port = free_port()
    exe = str(Path(sys.executable).with_name('lesion_fastai'))
    with open(root/'server.log', 'w') as out:
        proc = subprocess.Popen([exe, 'serve', '--model', OLD/'model', '--classifier', OLD/'classifier', '--port', str(port), '--runtime', 'torch'],
                                stdout=out, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f'http://127.0.0.1:{port}', timeout=120)
    wait_ready(proc, client, root/'server.log')
    yield root, client, rep
    client.close(); proc.terminate(); proc.wait(10)

@pytest.mark.parametrize('iid', CLASSIFIED)
def test_classify_is_classify_predict(with_classifier, iid):
    "POST /classify: predict's mask, and the probabilities classify-predict gives when it crops by predict's masks"
    root, client, rep = with_classifier
    f = OLD/'data'/'images'/f'{iid}.jpg'
    r = client.post('/classify', files={'file': (f.name, f.read_bytes())})
    assert r.status_code == 200, r.text
    a = r.json()
    assert base64.b64decode(a['mask_png']) == (root/'pred'/f'{iid}_segmentation.png').read_bytes()
    c, row = a['classification'], rep.loc[iid]
    assert c['pred'] == row['pred'] and c['variant'] == row['variant']
    for k in ('dark', 'light'): assert c['probs'][k] == pytest.approx(row[f'p_{k}'], abs=1e-6), k
    assert c['uncertainty'] == pytest.approx(row['uncertainty'], abs=1e-6)
    flag = next((k for k in rep.columns if k.endswith('_flag')), None)
    assert c['flag_class'] == (flag and flag[:-5]) and c['flag'] == (bool(row[flag]) if flag else None)

def test_classifier_card_and_health(with_classifier):
    root, client, _ = with_classifier
    card = client.get('/model').json()
    assert card['classifier']['file'] == 'classifier.json' and card['segmenter']['file'] == 'config.json'
    assert client.get('/health').json()['classifier'] == 'dark, light'
    assert client.post('/classify', files={'file': ('notes.jpg', b'not an image')}).status_code == 422
    assert 'and http' in next(l for l in (root/'server.log').read_text().splitlines() if l.startswith('Serving'))

def test_no_classify_without_classifier(served):
    assert served[1].post('/classify', files={'file': ('a.jpg', b'x')}).status_code == 404

sys.path.insert(0, str(Path(__file__).parents[1]/'tools'))
import render_docs as rd

def _evaluate(ch, s, expr:str):
    "The value of the JavaScript `expr` in the page of the session `s`"
    return ch.send('Runtime.evaluate', s, expression=expr, awaitPromise=True, returnByValue=True)['result'].get('value')

def _pick_file(ch, s, f:Path)->str:
    "Pick the file `f` in the page's file input (as a person does), then wait for its answer; the page's state"
    _evaluate(ch, s, "document.body.dataset.state = 'picking'")
    doc = ch.send('DOM.getDocument', s)['root']['nodeId']
    node = ch.send('DOM.querySelector', s, nodeId=doc, selector='#file')['nodeId']
    ch.send('DOM.setFileInputFiles', s, files=[str(f)], nodeId=node)
    for _ in range(600):
        state = _evaluate(ch, s, 'document.body.dataset.state')
        if state in ('done', 'error'): return state
        time.sleep(0.1)
    return state

def _screenshot(ch, s, f:Path):
    f.write_bytes(base64.b64decode(ch.send('Page.captureScreenshot', s, format='png')['data']))

def _open_page(ch, url:str)->str:
    "A new tab of `ch` showing `url`, loaded; its session"
    t = ch.send('Target.createTarget', url='about:blank')['targetId']
    s = ch.send('Target.attachToTarget', targetId=t, flatten=True)['sessionId']
    ch.send('Page.enable', s)
    ch.send('Emulation.setDeviceMetricsOverride', s, width=1100, height=900, deviceScaleFactor=1, mobile=False)
    ch.send('Page.navigate', s, url=url)
    ch.wait(lambda m: m.get('method') == 'Page.loadEventFired' and m.get('sessionId') == s)
    return s

RED_PIXELS = """(() => { const c = document.getElementById('overlay');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
    for (let i = 0; i < d.length; i += 4) n += d[i] > 200 && d[i+1] < 120; return [c.width, c.height, n]; })()"""
SHOWN = "[getComputedStyle(document.getElementById('out')).display, document.getElementById('status').outerHTML]"

@pytest.mark.skipif(rd.find_browser() is None, reason='no Chromium on PATH')
def test_page_in_chromium(served, tmp_path):
    "The page at / in headless Chromium: an image picked shows its mask overlaid and the QC line; a bad file, the reason"
    root, client, _ = served
    shots = Path(os.environ.get('LESION_PAGE_SHOTS', tmp_path))
    (tmp_path/'notes.jpg').write_bytes(b'hello, not a picture')
    with rd.Chromium() as ch:
        s = _open_page(ch, str(client.base_url) + '/')
        assert _evaluate(ch, s, SHOWN)[0] == 'none'                           # nothing shown before an image
        assert _pick_file(ch, s, image(root, 3)) == 'done'
        _screenshot(ch, s, shots/'page_mask.png')
        dom, lesion, shown = (_evaluate(ch, s, e) for e in ('document.documentElement.outerHTML', RED_PIXELS, SHOWN))
        assert _pick_file(ch, s, tmp_path/'notes.jpg') == 'error'
        _screenshot(ch, s, shots/'page_error.png')
        refused = _evaluate(ch, s, SHOWN)
    mask = np.asarray(Image.open(io.BytesIO(reference(root, 3)))) > 0
    assert lesion[:2] == list(Image.open(image(root, 3)).size) and lesion[2] > 0.5*mask.sum(), (lesion, mask.sum())
    assert shown[0] == 'flex' and 'href="data:image/png;base64,' in dom and 'demo_0003: 256×192 pixels' in shown[1]
    assert 'download="demo_0003_segmentation.png"' in dom and ('QC flag' in dom or 'QC: no flag' in dom)
    assert refused[0] == 'none' and 'class="error"' in refused[1]
    assert 'The server refused notes.jpg: notes.jpg: not an image' in refused[1], refused

@pytest.mark.skipif(rd.find_browser() is None, reason='no Chromium on PATH')
def test_page_with_classifier_in_chromium(with_classifier, tmp_path):
    "With a classifier the page posts to /classify and shows the diagnosis and its probabilities"
    root, client, rep = with_classifier
    shots = Path(os.environ.get('LESION_PAGE_SHOTS', tmp_path))
    with rd.Chromium() as ch:
        s = _open_page(ch, str(client.base_url) + '/')
        assert _pick_file(ch, s, root/'images'/f'{CLASSIFIED[0]}.jpg') == 'done'
        _screenshot(ch, s, shots/'page_classifier.png')
        table = _evaluate(ch, s, "document.getElementById('diagnosis').innerText")
    assert f"Diagnosis: {rep.loc[CLASSIFIED[0], 'pred']}" in table and 'dark' in table and 'light' in table, table
