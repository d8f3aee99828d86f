# kNN-MoCo on COCO train2017, 200 epochs: the paper's main recipe (Table 4, last row).
# ResNet-50, MoCo-v2 head 2048-2048-128, T=0.2, K=65536; CC multi-crop 2x160 + 4x96, A+,
# momentum 0.995, NN with k=20 and lambda=0.4 after 5 warm-up epochs; SGD lr 0.3 for batch
# 256 (2 GPUs x 128), cosine per epoch.
#   python tools/train.py configs/knn_moco_coco.py            # 1 process
#   bash tools/dist_train.sh configs/knn_moco_coco.py 2       # as the paper (2 x 128)
_base_ = [
    '_base_/models/knn_moco_r50.py',
    '_base_/datasets/coco_knn_moco.py',
    '_base_/schedules/sgd_coslr_200e.py',
    '_base_/default_runtime.py',
]
