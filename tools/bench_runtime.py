"""Benchmark of the engines that can run a trained segmentation network on this CPU: milliseconds per image-view of
the forward pass at the model's input size, and each engine's masks against torch in fp32. It checks nothing: quote
its output (the table of `nbs/16_learner.runtime.ipynb`).

    python tools/bench_runtime.py --model MODEL_FOLDER --images DIR [--n 32] [--views 8] [--threads 2] [--compile]

Engines: torch eager fp32; torch eager bf16 + channels-last (the library's torch path on a CPU with bf16); ONNX
Runtime fp32 (when installed); OpenVINO fp32 and bf16 (when installed); `torch.compile` bf16 with `--compile` (it
spends tens of seconds compiling first)."""
import argparse, tempfile, time, warnings
from pathlib import Path
import numpy as np, torch
from lesion_fastai.io import load_image
from lesion_fastai.seg.ensemble import load_member, prepare_image
from lesion_fastai.learner.runtime import openvino_installed

def batch(folder:Path, n:int, views:int):
    "The network's input: `n` images of `folder` prepared as the model expects, repeated `views` times"
    learn, cfg = load_member(folder)
    files = sorted(f for f in Path(args.images).iterdir() if f.suffix.lower() in ('.jpg', '.jpeg', '.png'))[:n]
    dl = learn.dls.test_dl([prepare_image(load_image(f), cfg) for f in files], bs=n)
    x = next(iter(dl))[0].as_subclass(torch.Tensor)
    return learn.model.eval().float(), torch.cat([x]*views)

def timed(fn, x, reps:int=5):
    "Median milliseconds per image of `fn(x)` over `reps` calls after one warm-up, and its output"
    out = fn(x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return np.median(times)/len(x)*1000, out.float()

def torch_engines(net):
    "torch eager in fp32, and in bf16 autocast with channels-last"
    def fp32(x):
        with torch.inference_mode(): return net.to(memory_format=torch.contiguous_format)(x)
    def bf16(x):
        with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
            return net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    return {'torch eager fp32': fp32, 'torch eager bf16 + channels-last': bf16}

def onnx_engine(net, x, threads:int):
    "ONNX Runtime fp32 on the network exported to ONNX"
    import onnxruntime as ort
    path = Path(tempfile.mkdtemp())/'net.onnx'
    torch.onnx.export(net.to(memory_format=torch.contiguous_format), x[:1], path, input_names=['x'],
                      dynamic_axes={'x': {0: 'n'}}, opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=['CPUExecutionProvider'])
    return {'ONNX Runtime fp32': lambda x: torch.from_numpy(sess.run(None, {'x': x.numpy()})[0])}

def openvino_engines(net, threads:int):
    "OpenVINO in fp32 and in bf16, converted from the torch module"
    import openvino as ov
    model = ov.convert_model(net.to(memory_format=torch.contiguous_format), example_input=torch.zeros(1, 3, 64, 64),
                             input=[-1, 3, -1, -1])
    def engine(precision):
        cm = ov.Core().compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': precision, 'INFERENCE_NUM_THREADS': threads})
        return lambda x: torch.from_numpy(cm(np.ascontiguousarray(x.numpy()))[0])
    return {'OpenVINO fp32': engine('f32'), 'OpenVINO bf16': engine('bf16')}

def compiled_engine(net):
    "`torch.compile` in bf16 autocast, its compilation timed apart"
    cnet = torch.compile(net.to(memory_format=torch.contiguous_format))
    def run(x):
        with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16): return cnet(x)
    return {'torch.compile bf16': run}

def mask_jaccard(out, ref)->tuple:
    "Lowest and mean per-image Jaccard of the 0.5-threshold lesion masks of `out` against `ref`"
    a, b = out.softmax(1)[:, 1] > .5, ref.softmax(1)[:, 1] > .5
    j = [((p & q).sum()/max((p | q).sum(), 1)).item() for p, q in zip(a, b)]
    return min(j), float(np.mean(j))

if __name__ == '__main__':
    warnings.filterwarnings('ignore')
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', required=True, help='a model folder (model.pkl, config.json)')
    p.add_argument('--images', required=True)
    p.add_argument('--n', type=int, default=8, help='images per pass')
    p.add_argument('--views', type=int, default=8, help='TTA views per image (the pass holds n × views)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--compile', action='store_true', help='also torch.compile (slow to start)')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    net, x = batch(Path(args.model), args.n, args.views)
    engines = torch_engines(net)
    try: engines.update(onnx_engine(net, x, args.threads))
    except ImportError: print('ONNX Runtime: not installed')
    if openvino_installed(): engines.update(openvino_engines(net, args.threads))
    else: print('OpenVINO: not installed')
    if args.compile: engines.update(compiled_engine(net))
    results = {name: timed(fn, x) for name, fn in engines.items()}
    ref, base = results['torch eager fp32'][1], results['torch eager bf16 + channels-last'][0]
    print(f'{len(x)} image-views of {tuple(x.shape[1:])} a pass, {args.threads} threads\n')
    print('| engine | ms per image-view | vs torch bf16 | lowest mask Jaccard | mean |\n|---|---|---|---|---|')
    for name, (ms, out) in results.items():
        low, mean = mask_jaccard(out, ref)
        print(f'| {name} | {ms:.2f} | {base/ms:.2f}× | {low:.4f} | {mean:.4f} |')
