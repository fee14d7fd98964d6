/* Sharing one compute device between training and inference: both take the device through this
 * scheduler, one at a time. When both wait, the one whose recent share of device time is below
 * its target goes first (inference's target is infer.share); when only one waits, it runs. A user
 * that releases the device below its share while the other waits has it kept for a short grace
 * (its host work between calls), so that the split is the target, not turn for turn. Recent time
 * is exponentially decayed, so the split follows the last few seconds of load. */
#ifndef TG_SHARE_H
#define TG_SHARE_H

typedef struct tg_share tg_share;

enum tg_share_who { TG_SHARE_TRAIN = 0, TG_SHARE_INFER = 1 };

/* infer_share in [0, 1]: 0 = inference only runs when training does not want the device,
 * 1 = training only runs when no inference is waiting. */
tg_share *tg_share_new(double infer_share);
void tg_share_free(tg_share *s);
void tg_share_acquire(tg_share *s, enum tg_share_who who);
void tg_share_release(tg_share *s, enum tg_share_who who);
/* Fraction of recent device time used by inference (for reports). */
double tg_share_infer_fraction(tg_share *s);

#endif
