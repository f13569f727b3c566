"""Load benchmark of the prediction service: the real uvicorn server (`serve_model`, its own process) on 127.0.0.1.

Sends `--requests` multipart uploads from `--concurrency` client threads (a bounded loop: each request is sent once, no
retries), cycling through `--n-images` images, and checks every answer: status 200, the mask decodes, it has the image's
size and it is byte-identical to the mask `predict_folder` writes for that image (computed first, in this process).
Prints p50/p95/max latency, requests/s and the lost (no answer, or not 200) and wrong (200 with another mask) counts,
the checkout that served and, where the server batches, how many images its forward passes held; exits 1 if any request
was lost or wrong. To compare two checkouts on the same model and images, run it with each one's PYTHONPATH in turn.

    python tools/bench_serve.py [--model DIR] [--images DIR] [--n-images 16] [--requests 300] [--concurrency 8]

Without `--model` a tiny model is trained on the demo set first (a few seconds); without `--images` the demo images (or
the isic-dev images beside the checkout when a model is given and they exist) are used."""
import argparse, base64, io, os, shutil, socket, statistics, subprocess, sys, tempfile, threading, time
from pathlib import Path
import httpx
from PIL import Image
import lesion_fastai
from lesion_fastai.io import list_images, find_isic_dev
from lesion_fastai.demo import demo_set
from lesion_fastai.seg.predict import predict_folder

def free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def pick_images(src, n:int, dest:Path)->list:
    "Copy the first `n` images of `src` into `dest`; their paths"
    dest.mkdir(parents=True)
    files = [Path(f) for _, f in sorted(list_images(src).items())][:n]
    for f in files: shutil.copy(f, dest/f.name)
    return sorted(dest.iterdir())

def start_server(model, port:int, log:Path)->subprocess.Popen:
    "`serve_model(model)` in a subprocess, returned once `/health` answers"
    code = f"from lesion_fastai.serve import serve_model; serve_model({str(model)!r}, port={port})"
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=open(log, 'w'), stderr=subprocess.STDOUT,
                            cwd=log.parent)   # not the caller's folder: a checkout there would shadow PYTHONPATH
    for _ in range(1200):
        if proc.poll() is not None: sys.exit(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f'http://127.0.0.1:{port}/health', timeout=5).status_code == 200: return proc
        except httpx.TransportError: time.sleep(0.1)
    proc.terminate(); sys.exit('server did not start in 2 minutes')

def stop(proc:subprocess.Popen):
    "Stop the server: SIGTERM, then SIGKILL if it has not exited within a minute (a loaded machine is slow to exit)"
    proc.terminate()
    try: proc.wait(60)
    except subprocess.TimeoutExpired: proc.kill(); proc.wait()

def check(r, img:Path, ref:bytes)->str:
    "'ok', 'lost' (not 200) or 'wrong' (200 with a mask of the wrong size or pixels)"
    if r.status_code != 200: return 'lost'
    png = base64.b64decode(r.json()['mask_png'])
    return 'ok' if png == ref and Image.open(io.BytesIO(png)).size == Image.open(img).size else 'wrong'

def load(port:int, images:list, refs:dict, n:int, conc:int)->tuple:
    "Send `n` requests from `conc` threads; (latencies in s, outcome counts, wall seconds)"
    todo, lock, lat, out = iter(range(n)), threading.Lock(), [], {'ok': 0, 'lost': 0, 'wrong': 0}
    def worker():
        with httpx.Client(base_url=f'http://127.0.0.1:{port}', timeout=300) as c:
            while True:
                with lock: i = next(todo, None)
                if i is None: return
                img = images[i % len(images)]; t = time.perf_counter()
                try: res = check(c.post('/predict', files={'file': (img.name, img.read_bytes())}), img, refs[img.name])
                except httpx.HTTPError: res = 'lost'
                with lock: lat.append(time.perf_counter() - t); out[res] += 1
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads: t.start()
    for t in threads: t.join()
    return lat, out, time.perf_counter() - t0

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', help='model or ensemble folder (default: train a tiny demo model)')
    p.add_argument('--images', help='folder of images to send')
    p.add_argument('--n-images', type=int, default=16)
    p.add_argument('--requests', type=int, default=300)
    p.add_argument('--concurrency', type=int, default=8)
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix='bench_serve-'))
    try: run(a, work)
    finally: shutil.rmtree(work, ignore_errors=True)

def run(a, work:Path):
    t_start = time.perf_counter()
    model, src = a.model, a.images
    if model is None:
        from lesion_fastai.seg.recipe import train_segmenter
        data = demo_set(n=12); model, src = work/'model', src or data/'images'
        train_segmenter(data, model, arch='smp-unet34', sizes=(64,), epochs=1, bs=4, lr=1e-3, pretrained=False, log=lambda *x: None, progress=False)
    src = src or ((find_isic_dev() or demo_set(n=12))/'images')
    images = pick_images(src, a.n_images, work/'images')
    predict_folder(model, work/'images', work/'ref', overlays=False, progress=False)
    refs = {f.name: (work/'ref'/f'{f.stem}_segmentation.png').read_bytes() for f in images}
    port = free_port()
    proc = start_server(model, port, work/'server.log')
    try:
        httpx.post(f'http://127.0.0.1:{port}/predict', files={'file': (images[0].name, images[0].read_bytes())}, timeout=300)  # warm-up
        lat, out, wall = load(port, images, refs, a.requests, a.concurrency)
        health = httpx.get(f'http://127.0.0.1:{port}/health', timeout=30).json()
    finally: stop(proc)
    q = statistics.quantiles(lat, n=100)
    print(f"model {model}; {len(images)} images from {src} ({Image.open(images[0]).size[0]}×{Image.open(images[0]).size[1]} first); "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"checkout {Path(lesion_fastai.__file__).parents[1]} (PYTHONPATH, bench and server); batching: "
          f"{health.get('batches', 'no batching')} (forward passes by images held)")
    print(f"{a.requests} requests, {a.concurrency} concurrent: {out['ok']} ok, lost={out['lost']}, wrong={out['wrong']}")
    print(f"latency p50 {q[49]*1e3:.0f} ms, p95 {q[94]*1e3:.0f} ms, max {max(lat)*1e3:.0f} ms; "
          f"{a.requests/wall:.1f} requests/s over {wall:.1f} s (whole run {time.perf_counter() - t_start:.0f} s)")
    if out['lost'] or out['wrong']: sys.exit(1)

if __name__ == '__main__': main()
