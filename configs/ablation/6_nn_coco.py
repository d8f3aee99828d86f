# Table 4, row 6: + NN (k=20, lambda=0.4, 5 warm-up epochs) = kNN-MoCo, configs/knn_moco_coco.py.
_base_ = ['./5_aplus_coco.py']

model = dict(head=dict(use_knn=True), knn_warmup_epochs=5)
