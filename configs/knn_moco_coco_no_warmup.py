# kNN-MoCo on COCO, 200 epochs, the release's no-warm-up NN variant (its headline script
# main_ours.py / scripts/ours_coco_200ep.sh): the NN loss from the first step, its neighbours
# searched in the backbone queue *after* this step's enqueue while the logits come from the
# key queue *before* it (paper appendix B; DualQueueHead(search_after_enqueue=True)). The
# paper reports similar results for both variants; the main recipe is knn_moco_coco.py.
_base_ = ['./knn_moco_coco.py']

model = dict(knn_warmup_epochs=0, head=dict(search_after_enqueue=True))
