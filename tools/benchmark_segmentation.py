"""Benchmark of the segmentation recipe: `lesion_fastai train --minutes M` on a data folder, then `lesion_fastai predict`
on the held-out validation fold at original resolution and `lesion_fastai evaluate` against its truth masks. It trains
with `--valid-fold 0` (the default trains on every image); a fold mixes the sources, so for unseen sources use
tools/benchmark_loso.py.
Usage: python tools/benchmark_segmentation.py [--data ../shared/data/isic-dev] [--minutes 30] [--out runs/bench] [-- TRAIN ARGS]"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

def run(cmd, log):
    "Run a CLI command, teeing its output to `log`; return wall seconds"
    print('$', ' '.join(map(str, cmd)), flush=True)
    t = time.time()
    with open(log, 'w') as f:
        p = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in p.stdout: f.write(line); sys.stdout.write(line); sys.stdout.flush()
        if p.wait(): sys.exit(f"failed: {' '.join(map(str, cmd))}")
    return time.time() - t

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default='../shared/data/isic-dev')
    p.add_argument('--minutes', type=float, default=30)
    p.add_argument('--out', default='runs/bench')
    p.add_argument('train_args', nargs='*', help='extra arguments for `lesion_fastai train` (after --)')
    a = p.parse_args()
    exe = Path(sys.executable).with_name('lesion_fastai')
    out, data = Path(a.out), Path(a.data)
    out.mkdir(parents=True, exist_ok=True)
    t_train = run([exe, 'train', '--data', data, '--out', out/'model', '--minutes', a.minutes, '--valid-fold', 0, *a.train_args], out/'train.log')
    cfg = json.loads((out/'model'/'config.json').read_text())
    held = out/'heldout'
    for d in ('images', 'masks'): (held/d).mkdir(parents=True, exist_ok=True)
    imgs = {f.stem: f for f in (data/'images').iterdir()}
    for i in cfg['valid']['ids']:
        for src, dst in ((imgs[i], held/'images'/imgs[i].name), (data/'masks'/f'{i}_segmentation.png', held/'masks'/f'{i}_segmentation.png')):
            if not dst.exists(): os.symlink(src.resolve(), dst)
    n = len(cfg['valid']['ids'])
    t_pred = run([exe, 'predict', '--model', out/'model', '--images', held/'images', '--out', out/'pred', '--no-overlays'], out/'predict.log')
    run([exe, 'evaluate', '--truth', held/'masks', '--pred', out/'pred', '--json', '--csv', out/'heldout_scores.csv'], out/'evaluate.json')
    scores = json.loads((out/'evaluate.json').read_text())
    n_train = sum(1 for _ in (data/'images').iterdir()) - n
    res = {'arch': cfg['arch'], 'minutes_budget': a.minutes, 'train_wall_s': round(t_train, 1), 'epochs': cfg['epochs'],
           'threshold': cfg['threshold'], 'postprocess': cfg['postprocess'], 'pretrained_weights': cfg['pretrained_weights'],
           'heldout_fold': f"{cfg['valid']['fold']} of {cfg['valid']['k']} (seed {cfg['valid']['seed']})", 'heldout_images': n,
           'heldout_threshold_jaccard': round(scores['threshold_jaccard'], 4), 'heldout_jaccard': round(scores['jaccard'], 4),
           'heldout_dice': round(scores['dice'], 4),
           'train_s_per_image_epoch': round(t_train/max(1, sum(e[2] for e in cfg['epochs']))/n_train, 4),
           'predict_wall_s': round(t_pred, 1), 'predict_s_per_image': round(t_pred/n, 3)}
    (out/'benchmark.json').write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
