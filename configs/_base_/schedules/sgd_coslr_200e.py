# The paper's optimisation: SGD lr 0.3 for a batch of 256 (the release: 2 GPUs x 128),
# momentum 0.9, weight decay 1e-4, cosine decay per epoch, no warm-up. mmpretrain's MoCo-v2
# schedule has everything but the learning rate.
_base_ = 'mmpretrain::_base_/schedules/imagenet_sgd_coslr_200e.py'

optim_wrapper = dict(optimizer=dict(lr=0.3))

# Scale the lr linearly for other batch sizes (tools/train.py --auto-scale-lr).
auto_scale_lr = dict(base_batch_size=256)
