"""`predict` as a user runs it, whole command (start-up, model load, outputs), in ms per image, arms alternating.

    python tools/bench_predict_speed.py --images IMAGES --rounds 3 \\
        --arm before='cd ../before && PYTHONPATH=. python -m lesion_fastai.cli predict --model M1 --images {images} --out {out}' \\
        --arm after='python -m lesion_fastai.cli predict --model M2 --images {images} --out {out}'

Each round runs every arm once, one after the other, into a fresh output folder, so that a change in the machine's load
reaches every arm alike. Run it on a machine with nothing else on it; a first run that converts a model for OpenVINO
is made before the timed rounds (`--warm`)."""
import argparse, shutil, subprocess, tempfile, time
from pathlib import Path

from lesion_fastai.io import list_images


def run_arm(cmd:str, images:str, out:Path)->float:
    "Seconds the shell command `cmd` takes, `{images}` and `{out}` filled in; its failure stops the benchmark"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = subprocess.run(cmd.format(images=images, out=out), shell=True, capture_output=True, text=True)
    if res.returncode: raise SystemExit(f"{cmd}: exit {res.returncode}\n{res.stderr[-2000:]}")
    return time.perf_counter() - t0


def main(a):
    arms, n = dict(x.split('=', 1) for x in a.arm), len(list_images(a.images))
    out = Path(tempfile.mkdtemp())/'pred'
    for name in a.warm or []: run_arm(arms[name], a.images, out)
    times = {name: [] for name in arms}
    for _ in range(a.rounds):
        for name, cmd in arms.items(): times[name].append(1e3*run_arm(cmd, a.images, out)/n)
    for name, ts in times.items(): print(f"{name}: {', '.join(f'{t:.1f}' for t in ts)} ms per image ({n} images)")


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', required=True, help='folder of images')
    p.add_argument('--arm', action='append', required=True, help="NAME='COMMAND' with {images} and {out}")
    p.add_argument('--rounds', type=int, default=3, help='runs of every arm, alternating')
    p.add_argument('--warm', nargs='*', help='arms run once before the timed rounds (a first run converts the model)')
    main(p.parse_args())
