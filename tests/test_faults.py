"""Faults a scheduler and a busy machine cause, through the installed `lesion_fastai` script: SIGTERM during `train`
(resumes like Ctrl-C) and during `predict` (nothing half-written), two processes writing one `--out` (the second is
refused, naming the first), and a lock left by a killed process (taken over).

A process is frozen with SIGSTOP at the moment under test, so that what it is doing then does not depend on the
machine's speed; SIGTERM is sent to the frozen process and delivered when SIGCONT wakes it."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd
import pytest
from lesion_fastai.demo import make_demo_set
from lesion_fastai.cli import main
from lesion_fastai.command import INTERRUPTED
from lesion_fastai.io import lock_file

EXE = str(Path(sys.executable).with_name('lesion_fastai'))
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}
EPOCHS = 4

def _wait(cond, p, what:str, timeout:float=300):
    "Poll `cond` every few milliseconds until it holds, failing if process `p` ends first"
    t0 = time.time()
    while not cond():
        assert p.poll() is None, f"the process ended before {what}: {p.communicate()[1][-2000:]}"
        assert time.time() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.002)

def _terminate(p):
    "SIGTERM a frozen process, then wake it: the signal arrives at the point where it was frozen"
    p.send_signal(signal.SIGTERM)
    p.send_signal(signal.SIGCONT)
    return p.communicate(timeout=120)

def _staged(out:Path)->list:
    "The hidden staging folders `predict` makes beside `out`"
    return sorted(out.parent.glob(f'.{out.name}-*'))

def _predict(root:Path, out:Path, *extra)->list:
    "The `predict` command line of the trained model on the demo images"
    return [EXE, 'predict', '--model', str(root/'model'), '--images', str(root/'data'/'images'), '--out', str(out),
            '--bs', '1', *extra]

def _holder(out:Path)->subprocess.Popen:
    "A process holding `out`'s lock (as `lesion_fastai predict` would) until it is killed"
    code = (f"from lesion_fastai.io import output_lock\nwith output_lock({str(out)!r}, what='lesion_fastai predict'):\n"
            "    print('held', flush=True); input()")
    p = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == 'held\n'
    return p

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "`train` stopped by SIGTERM after its first checkpointed epoch, then run again: the runs' results, and the model"
    root = tmp_path_factory.mktemp('faults')
    make_demo_set(root/'data', n=16, size=(192, 144), prefix='ISIC_000')
    cmd = [EXE, 'train', '--data', str(root/'data'), '--out', str(root/'model'), '--size', '64',
           '--epochs', str(EPOCHS), '--bs', '4', '--lr', '2e-3', '--checkpoint-every', '0', '--valid-fold', '0']
    state = root/'model'/'checkpoints'/'state.json'
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    _wait(lambda: state.exists() and json.loads(state.read_text())['epoch'] >= 1, p, 'a checkpoint')
    p.send_signal(signal.SIGSTOP)
    _, err = _terminate(p)
    first = dict(status=p.returncode, stderr=err, done=json.loads(state.read_text())['epoch'],
                 config=(root/'model'/'config.json').exists(), model=(root/'model'/'model.pkl').exists())
    again = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    return root, first, again

def test_sigterm_during_train_resumes(trained):
    "SIGTERM during `train`: INTERRUPTED and status 143, no finished model; the same command resumes, no epoch repeated"
    root, first, again = trained
    assert first['status'] == 143, first['stderr'][-3000:]
    assert first['stderr'].strip().splitlines()[-1] == f'lesion_fastai train: {INTERRUPTED}', first['stderr']
    assert 'Traceback' not in first['stderr'] and not first['config'] and not first['model']
    assert f"epoch {first['done'] + 1} of {EPOCHS}" in again.stdout, again.stdout[-2000:]
    assert json.loads((root/'model'/'config.json').read_text())['resumed'] is True
    assert list(pd.read_csv(root/'model'/'history.csv').epoch) == list(range(EPOCHS))
    assert not lock_file(root/'model').exists()

def test_sigterm_during_predict(trained, tmp_path):
    "SIGTERM while `predict` writes masks: INTERRUPTED, status 143, no staging folder left, --out as it was"
    root = trained[0]
    out = tmp_path/'p'
    out.mkdir()
    (out/'notes.txt').write_text('mine')                          # a folder without predictions may be predicted into
    p = subprocess.Popen(_predict(root, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    _wait(lambda: any(any(s.glob('ISIC_*_segmentation.png')) for s in _staged(out)), p, 'the first mask')
    p.send_signal(signal.SIGSTOP)
    staged = _staged(out)
    assert len(staged) == 1 and 0 < len(list(staged[0].glob('ISIC_*_segmentation.png'))) < 16
    _, err = _terminate(p)
    assert p.returncode == 143 and err.strip().splitlines()[-1] == f'lesion_fastai predict: {INTERRUPTED}', err
    assert 'Traceback' not in err
    assert _staged(out) == [] and not lock_file(out).exists()
    assert os.listdir(out) == ['notes.txt'] and (out/'notes.txt').read_text() == 'mine'
    assert sorted(os.listdir(tmp_path)) == ['p']

def test_two_predicts_one_out(trained, tmp_path):
    "Two `predict`s to one --out: the second is refused naming the first, which completes; the folder is the first's"
    root = trained[0]
    out = tmp_path/'c'
    first = subprocess.Popen(_predict(root, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    _wait(lambda: lock_file(out).exists() and lock_file(out).stat().st_size, first, 'the lock')
    first.send_signal(signal.SIGSTOP)                     # it holds the lock for as long as the second one needs
    second = subprocess.run(_predict(root, out, '--no-overlays'), capture_output=True, text=True, env=ENV)
    first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert second.returncode == 2 and 'Traceback' not in second.stderr, second.stderr
    line = second.stderr.strip().splitlines()[-1]
    holder = f'in use by lesion_fastai predict (pid {first.pid} on host'
    assert line.startswith(f'lesion_fastai predict: error: {out}: {holder}'), line
    assert first.returncode == 0, err[-3000:]
    ids = sorted(p.stem for p in (root/'data'/'images').iterdir())
    assert sorted(pd.read_csv(out/'predictions.csv').image_id) == ids
    assert sorted(f.name for f in out.glob('*_segmentation.png')) == [f'{i}_segmentation.png' for i in ids]
    assert len(list((out/'overlays').iterdir())) == 16                    # the first's overlays, and only its
    assert sorted(os.listdir(tmp_path)) == ['c']                          # no lock, no staging folder

def test_stale_lock_taken_over(trained, tmp_path):
    "A lock left by a SIGKILLed process does not stop the next `predict`, which takes it over without a word"
    root = trained[0]
    out = tmp_path/'s'
    holder = _holder(out)
    holder.kill()
    holder.wait()
    assert json.loads(lock_file(out).read_text())['pid'] == holder.pid    # the file stays; its lock went with it
    res = subprocess.run(_predict(root, out, '--no-overlays'), capture_output=True, text=True, env=ENV)
    lines = [l for l in res.stderr.splitlines() if 'insecure pickle' not in l]     # fastai's warning on every load
    assert res.returncode == 0 and lines == [], res.stderr
    assert len(list(out.glob('*_segmentation.png'))) == 16 and sorted(os.listdir(tmp_path)) == ['s']

def test_every_writer_refused_while_held(trained, tmp_path, capsys):
    "`train`, `predict`, `classify-train` and `classify-predict` each refuse an --out another process holds: status 2"
    root = trained[0]
    out = tmp_path/'held'
    holder = _holder(out)
    data, images = root/'data', root/'data'/'images'
    argvs = {'train': ['--data', data, '--size', 64, '--epochs', 1],
             'predict': ['--model', root/'model', '--images', images],
             'classify-train': ['--images', images, '--labels', tmp_path/'labels.csv', '--masks', data/'masks'],
             'classify-predict': ['--model', root/'model', '--images', images, '--masks', data/'masks']}
    try:
        for command, argv in argvs.items():
            assert main([command, *map(str, argv), '--out', str(out)]) == 2, command
            err = capsys.readouterr().err.strip().splitlines()[-1]
            assert f"{command}: error: {out}: in use by lesion_fastai predict (pid {holder.pid} on host" in err, err
    finally:
        holder.kill()
        holder.wait()
    assert not out.exists()
