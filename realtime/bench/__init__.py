"""What ``nst-bench`` measures: ``speed`` (model-only ms/frame), ``video`` (end-to-end
nst-video fps), ``flicker`` (the temporal blend on real clips, scored by ``warping``: the
warping error of Lai et al. 2018) and ``peers`` (our styles beside other projects' networks).
"""
