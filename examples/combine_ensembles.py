"""Combine ensemble folders into one ensemble and segment a folder of images with it: the library from a script.

    python examples/combine_ensembles.py ENSEMBLE_A ENSEMBLE_B --images DIR --out DIR [--truth DIR] [--save DIR]

Every member of every ensemble votes (probabilities averaged at each image's original size, 8-way TTA); the decision
and QC thresholds are the mean of the ensembles' own unless given. `--save` writes the combined manifest, which
`lesion_fastai predict --model DIR` then uses like any ensemble folder."""
import argparse, sys
from lesion_fastai.config import LesionDataError
from lesion_fastai.seg.ensemble import Ensemble
from lesion_fastai.seg.predict import predict_folder

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('ensembles', nargs='+', help='ensemble (or model) folders')
    p.add_argument('--images', required=True, help='folder of images to segment')
    p.add_argument('--out', required=True, help='output folder (masks, overlays, predictions.csv)')
    p.add_argument('--truth', help='optional folder of truth masks')
    p.add_argument('--save', help='write the combined ensemble manifest to this folder')
    p.add_argument('--threshold', type=float, help='decision threshold (default: mean of the ensembles\')')
    a = p.parse_args(argv)
    try:
        parts = [Ensemble.load(e, tta=True) for e in a.ensembles]
        ens = Ensemble.combine(*parts, threshold=a.threshold)
        print(ens)
        if a.save: print(f"combined manifest: {ens.save(a.save, combined_from=[str(e) for e in a.ensembles])}")
        rep = predict_folder(ens, a.images, a.out, truth=a.truth, progress=False)
    except LesionDataError as e:
        print(f"combine_ensembles: error: {e}", file=sys.stderr); return 2
    line = f"{len(rep)} images segmented into {a.out}; QC flagged {int(rep.qc_flag.sum())}"
    if a.truth: line += f"; mean thresholded Jaccard {rep.threshold_jaccard.mean():.4f}"
    print(line)
    return 0

if __name__ == '__main__': sys.exit(main())
