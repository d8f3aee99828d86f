# kNN-MoCo with ResNet-50 (arXiv 2106.05967, appendix): MoCo-v2 MLP head 2048-2048-128
# without BN, T = 0.2, K = 65536, NN with k = 20 and lambda = 0.4 after 5 warm-up epochs.
model = dict(
    type='KNNMoCo',
    # mmengine's EMA convention: weight of the online encoder. Paper m = 0.995 (with
    # multi-crop) -> momentum = 0.005; MoCo-v2's m = 0.999 -> momentum = 0.001.
    momentum=0.005,
    knn_warmup_epochs=5,
    num_small_crops=4,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=50,
        norm_cfg=dict(type='BN'),
        zero_init_residual=False),
    neck=dict(
        type='MoCoV2Neck',
        in_channels=2048,
        hid_channels=2048,
        out_channels=128,
        with_avg_pool=True),
    head=dict(
        type='DualQueueHead',
        queue_len=65536,
        feat_dim=128,
        backbone_dim=2048,
        temperature=0.2,
        use_knn=True,
        knn_k=20,
        knn_weight=0.4,
        backbone_queue_dtype='float32',
        # True: the release's no-warm-up variant (configs/knn_moco_coco_no_warmup.py)
        search_after_enqueue=False))
