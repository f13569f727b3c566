"""Decision rules compared on saved probability maps: one threshold against two-threshold (hysteresis) post-processing.

    python tools/decision_variants.py --probs DIR --truth DIR

`DIR` of `--probs` holds `<ID>_prob.png` maps (`lesion_fastai predict --probs`); `--truth` the truth masks. Every rule is
followed by the default post-processing (largest component, holes filled) and scored by the official rules; each is
compared with a threshold of 0.5, image by image (`lesion_fastai.stats.paired_table`). The two-threshold rule
(`skimage.filters.apply_hysteresis_threshold`) keeps the pixels above `low` that connect to a pixel above `high`: the
ISIC 2017 winner's answer to a lesion's light rim."""
import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from skimage.filters import apply_hysteresis_threshold

from lesion_fastai.data import read_mask
from lesion_fastai.metrics import score_masks
from lesion_fastai.stats import paired_table
from lesion_fastai.train import postprocess_mask


def rules()->dict:
    "Name → rule of every decision compared: thresholds, and (high, low) hysteresis pairs"
    res = {f't{t}': (lambda t: lambda p: p > t)(t) for t in (0.5, 0.4, 0.6)}
    for hi in (0.5, 0.7):
        for lo in (0.3, 0.4):
            res[f'h{hi}/{lo}'] = (lambda hi, lo: lambda p: apply_hysteresis_threshold(p, lo, hi))(hi, lo)
    return res


def image_scores(prob_file:Path, truth_dir:Path, rules:dict)->dict:
    "Thresholded Jaccard of every rule on one probability map"
    iid = prob_file.name[:-len('_prob.png')]
    p = np.asarray(Image.open(prob_file), np.float32)/255
    t = read_mask(truth_dir/f'{iid}_segmentation.png')
    return {k: score_masks(t, postprocess_mask(r(p)))['threshold_jaccard'] for k, r in rules.items()}


def main(a):
    rs = rules()
    files = sorted(Path(a.probs).glob('*_prob.png'))
    t = pd.DataFrame({f.name[:-len('_prob.png')]: image_scores(f, Path(a.truth), rs) for f in files}).T
    comp = pd.concat([paired_table(t[k], t['t0.5']).assign(rule=k) for k in t.columns[1:]], ignore_index=True)
    print(comp.round(4).to_string(index=False))


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--probs', required=True, help='folder of <ID>_prob.png maps')
    p.add_argument('--truth', required=True, help='folder of truth masks')
    main(p.parse_args())
