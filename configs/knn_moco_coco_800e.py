# kNN-MoCo on COCO for 800 epochs: the NN term waits 20 epochs instead of 5.
_base_ = ['./knn_moco_coco.py', '_base_/schedules/sgd_coslr_800e.py']

model = dict(knn_warmup_epochs=20)
