"""The pretrained path on CPU, end to end, with no ImageNet weights and no network: random weights of the right shapes
sit in a temporary torch cache (`TORCH_HOME`) under torchvision's file names, and `--pretrained require` makes a run
that cannot find them fail instead of training from scratch.

- `train`: the whole recipe, a frozen phase with its `lr_find`, unfreeze with its `lr_find`, and two sizes (32 → 64
  here, 128 → 256 by default); each stage in the log and in `history.csv` (`stage`, `lr`).
- `classify-train`: the classifier's SnapEsem schedule on ImageNet weights (a frozen cycle before each stage).
- `train` under a 2-process launcher (torchrun with `ACCELERATE_USE_CPU=1`, as `60_distributed` explains:
  `accelerate launch --cpu` starts one process without MPI): it finishes and writes a model that loads."""
import json, os, re, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest
import torch
import torchvision.models as tvm
from lesion_fastai.demo import make_demo_set

EXE = str(Path(sys.executable).with_name('lesion_fastai'))
# torchvision's checkpoint file names, where `imagenet_weights_file` expects them
CHECKPOINTS = {'resnet34': ('resnet34-b627a593.pth', tvm.resnet34),
               'resnet50': ('resnet50-11ad3fa6.pth', tvm.resnet50)}

@pytest.fixture(scope='module')
def torch_home(tmp_path_factory)->Path:
    "A torch cache holding random ResNet34 and ResNet50 state dicts under torchvision's checkpoint names"
    home = tmp_path_factory.mktemp('torch_home')
    (home/'hub'/'checkpoints').mkdir(parents=True)
    torch.manual_seed(0)
    for name, model in CHECKPOINTS.values(): torch.save(model().state_dict(), home/'hub'/'checkpoints'/name)
    return home

@pytest.fixture(scope='module')
def data(tmp_path_factory)->Path:
    "Twelve demo pairs, and dark/light labels for the classifier"
    root = tmp_path_factory.mktemp('data')
    ids = make_demo_set(root/'data', n=12)
    pd.DataFrame({'image_id': ids, 'dx': ['dark', 'light']*6}).to_csv(root/'labels.csv', index=False)
    return root

def _env(torch_home:Path)->dict:
    "The environment of a run: the torch cache above, downloads off, one thread"
    return {**os.environ, 'TORCH_HOME': str(torch_home), 'LESION_FASTAI_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}

def _run(cmd:list, cwd:Path, env:dict)->str:
    "Run `cmd`; its stdout, once it succeeded (the timeout allows for a busy machine: a run takes about a CPU minute)"
    res = subprocess.run([*map(str, cmd)], capture_output=True, text=True, cwd=cwd, env=env, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout

def _in_order(out:str, *parts:str):
    "Assert that each of `parts` appears in `out`, in this order"
    pos = [out.find(p) for p in parts]
    assert -1 not in pos and pos == sorted(pos), (parts, pos, out)

def _valley(out:str, name:str)->float:
    "The valley `lr_find (name)` printed"
    return float(re.search(rf"lr_find \({name}\): valley (\S+)", out)[1])

def test_weights_file_names(torch_home, monkeypatch):
    "The fixture's files are where the library looks for them"
    from lesion_fastai.learner.encoders import imagenet_weights, weights_for
    monkeypatch.setenv('TORCH_HOME', str(torch_home))
    for arch, (name, _) in CHECKPOINTS.items():
        assert imagenet_weights(arch) == torch_home/'hub'/'checkpoints'/name
        assert weights_for(arch, True) == torch_home/'hub'/'checkpoints'/name

@pytest.mark.slow
def test_train_whole_pretrained_recipe(torch_home, data):
    "Frozen phase, lr_find, unfreeze, lr_find, at two sizes; each stage in the log and in history.csv; the model loads"
    out = _run([EXE, 'train', '--data', 'data', '--out', 'm', '--pretrained', 'require', '--size', 32, 64,
                '--epochs', 1, '--frozen-epochs', 1, '--bs', 4, '--valid-fold', 0], data, _env(torch_home))
    weights = torch_home/'hub'/'checkpoints'/CHECKPOINTS['resnet34'][0]
    _in_order(out, f'resnet34: ImageNet weights from {weights}',
              'smp-unet34: 24.4 M parameters, ImageNet encoder weights',
              'lr_find (32_frozen)', 'stage 32_frozen: 1 epochs, encoder frozen', 'lr_find (32)',
              'stage 32: 1 epochs, every layer trains', 'lr_find (64_frozen)',
              'stage 64_frozen: 1 epochs, encoder frozen',
              'lr_find (64)', 'stage 64: 1 epochs, every layer trains', 'validation thresholded Jaccard')
    m = data/'m'
    hist = pd.read_csv(m/'history.csv', dtype={'stage': str})
    assert list(hist.stage) == ['32_frozen', '32', '64_frozen', '64'] and list(hist['size']) == [32, 32, 64, 64]
    lr = dict(zip(hist.stage, hist.lr))
    for stage in ('32_frozen', '32', '64_frozen'):        # the rate each lr_find chose
        assert lr[stage] == pytest.approx(_valley(out, stage), rel=.01), stage
    first = lr['32']                                 # the later stage's lr_find is bounded by the first stage's rate
    assert first/10*.99 <= lr['64'] <= first*1.01, (lr, _valley(out, '64'))
    for name in ('32_frozen', '32', '64_frozen', '64'): assert (m/f'lr_find_{name}.png').exists(), name
    cfg = json.loads((m/'config.json').read_text())
    assert cfg['pretrained_weights'] == str(weights) and cfg['size'] in (32, 64)
    from lesion_fastai.seg.predict import load_model
    from lesion_fastai.io import list_images, load_image
    img = load_image(next(iter(list_images(data/'data'/'images').values())))
    assert load_model(m, tta=False).predict([img], tta=False)[0]['mask'].shape == img.shape[:2]

def test_classify_train_pretrained_schedule(torch_home, data):
    "classify-train on ResNet50 weights: a frozen cycle before each SnapEsem stage, then unfrozen cycles; it predicts"
    out = _run([EXE, 'classify-train', '--images', 'data/images', '--labels', 'labels.csv', '--masks', 'data/masks',
                '--out', 'cls', '--pretrained', 'require', '--size', 32, '--full-cycles', 2, '--crop-cycles', 1,
                '--cycle-len', 1, '--keep', 1, '--bs', 4], data, _env(torch_home))
    weights = torch_home/'hub'/'checkpoints'/CHECKPOINTS['resnet50'][0]
    _in_order(out, f'resnet50: ImageNet weights from {weights}', 'resnet50: 25.6 M parameters, ImageNet weights',
              'full stage (whole images): 2 cycles', 'crop stage (lesion crops): 1 cycles', 'classifier in cls')
    m = data/'cls'/'model'
    assert list(pd.read_csv(m/'history.csv').stage) == ['full_frozen', 'full', 'full', 'crop_frozen', 'crop']
    cfg = json.loads((m/'config.json').read_text())
    assert cfg['pretrained_weights'] == str(weights) and cfg['snapshots'] == {'crop': ['crop0.pth']}
    from lesion_fastai.cls.predict import classify_folder
    rep = classify_folder(data/'cls', data/'data'/'images', data/'pred', masks=data/'data'/'masks', progress=False)
    assert len(rep) == 12 and set(rep['pred']) <= {'dark', 'light'}

@pytest.mark.slow
def test_train_pretrained_under_a_launcher(torch_home, data):
    "Two CPU processes train one pretrained model (frozen phase, unfreeze, two sizes; --lr, as a launcher needs)"
    env = {**_env(torch_home), 'ACCELERATE_USE_CPU': '1'}
    launcher = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', 2]
    cmd = [*launcher, '-m', 'lesion_fastai.cli',
           'train', '--data', 'data', '--out', 'm2', '--pretrained', 'require', '--size', 32, 64, '--epochs', 1,
           '--frozen-epochs', 1, '--lr', 1e-3, '--bs', 4, '--valid-fold', 0]
    out = _run(cmd, data, env)
    _in_order(out, 'ImageNet encoder weights', 'stage 32_frozen: 1 epochs, encoder frozen', 'stage 32: 1 epochs',
              'stage 64_frozen: 1 epochs', 'stage 64: 1 epochs', 'validation thresholded Jaccard')
    for r in (0, 1): assert f'process {r} of 2: weights agree with the other processes' in out, out
    assert 'lr_find' not in out
    hist = pd.read_csv(data/'m2'/'history.csv', dtype={'stage': str})
    assert list(hist.stage) == ['32_frozen', '32', '64_frozen', '64']
    from lesion_fastai.seg.predict import load_model
    from lesion_fastai.io import list_images, load_image
    img = load_image(next(iter(list_images(data/'data'/'images').values())))
    model = load_model(data/'m2', tta=False)
    assert json.loads((data/'m2'/'config.json').read_text())['pretrained_weights'].endswith(CHECKPOINTS['resnet34'][0])
    assert model.predict([img], tta=False)[0]['mask'].shape == img.shape[:2]
