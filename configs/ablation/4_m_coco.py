# Table 4, row 4: + m, momentum 0.999 -> 0.995 (mmengine convention: 0.001 -> 0.005).
_base_ = ['./3_cc_coco.py']

model = dict(momentum=0.005)
