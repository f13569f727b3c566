"""Benchmark of the classifier's wall clock under a load that comes and goes: `lesion_fastai classify-train --folds K
--minutes M` next to a CPU burner that a thread stops and restarts (SIGSTOP/SIGCONT) at random intervals, then the
table the issue asks for: each member's epochs and minutes, the spread of the epochs around their mean, and the run
against its budget. It checks nothing: quote its output.

    python tools/bench_cls_clock.py --images DIR --labels CSV [--masks DIR] [--folds 3] [--minutes 10] [--on 20 60]
                                    [--out DIR] [-- extra classify-train flags, e.g. --input full --size 64]"""
import argparse, json, os, random, signal, subprocess, sys, threading, time
from pathlib import Path

def burner(low:float, high:float, seed:int=0):
    "A busy process stopped and restarted every `low`–`high` s at random; returns a function that ends it"
    proc, stop = subprocess.Popen([sys.executable, '-c', 'while True: pass']), threading.Event()
    def toggle():
        rng, on = random.Random(seed), True
        while not stop.wait(rng.uniform(low, high)):
            os.kill(proc.pid, signal.SIGSTOP if on else signal.SIGCONT)
            on = not on
    threading.Thread(target=toggle, daemon=True).start()
    def end():
        stop.set()
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
    return end

def member_rows(out:Path, folds:int)->list:
    "(member, epochs, minutes) of each member, from the clock its config.json records"
    rows = []
    for f in range(folds):
        clock = json.loads((out/f'fold{f}'/'config.json').read_text())['clock']
        rows.append((f'fold{f}', clock['epochs'], sum(c['seconds'] for c in clock['cycles'])/60))
    return rows

def report(rows:list, took:float, minutes:float):
    "Print the members' table, the epochs' spread around their mean and the run against its budget"
    mean = sum(r[1] for r in rows)/len(rows)
    print('| member | epochs | minutes | epochs / mean |\n|---|---|---|---|')
    for name, ep, mins in rows: print(f'| {name} | {ep:.2f} | {mins:.2f} | {ep/mean - 1:+.0%} |')
    print(f'run: {took:.2f} min of {minutes:g} ({took/minutes - 1:+.1%}); '
          f'largest epoch spread {max(abs(r[1]/mean - 1) for r in rows):.0%} (must hold: ±25 %; run ±5 %)')

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', required=True)
    p.add_argument('--labels', required=True)
    p.add_argument('--masks')
    p.add_argument('--folds', type=int, default=3)
    p.add_argument('--minutes', type=float, default=10.)
    p.add_argument('--on', type=float, nargs=2, default=(20., 60.), help='the burner toggles every LOW–HIGH s')
    p.add_argument('--out', default='runs/cls_clock')
    a, extra = p.parse_known_args()
    cmd = [str(Path(sys.executable).with_name('lesion_fastai')), 'classify-train', '--images', a.images,
           '--labels', a.labels, '--out', a.out, '--folds', str(a.folds), '--minutes', str(a.minutes), '--restart',
           *(['--masks', a.masks] if a.masks else []), *[x for x in extra if x != '--']]
    end, t0 = burner(*a.on), time.time()
    try: subprocess.run(cmd, check=True)
    finally: end()
    report(member_rows(Path(a.out), a.folds), (time.time() - t0)/60, a.minutes)

if __name__ == '__main__': main()
