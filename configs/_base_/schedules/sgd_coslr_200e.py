# The paper's optimisation: SGD lr 0.3 for a batch of 256 (the release: 2 GPUs x 128),
# momentum 0.9, weight decay 1e-4, cosine decay per epoch, no warm-up. mmpretrain's MoCo-v2
# schedule has everything but the learning rate.
_base_ = 'mmpretrain::_base_/schedules/imagenet_sgd_coslr_200e.py'

optim_wrapper = dict(optimizer=dict(lr=0.3))

# lr 0.3 is for a global batch of 256: mmengine scales it linearly to the actual global batch
# (batch per process x processes), e.g. 1 x 128 -> 0.15, 2 x 128 -> 0.3; the guard hook logs
# the lr the run uses. enable=False trains with the lr as written.
auto_scale_lr = dict(base_batch_size=256, enable=True)
