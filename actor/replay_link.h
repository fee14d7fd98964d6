/* The actor's connection to the replay server: a DEALER that sends each finished game as one
 * Game message (so a game is never half-sent) and keeps it until a GameAck names its sequence
 * number (GameAck.seq; an ack without one acknowledges the oldest game, for servers that do not
 * echo it). Games unacknowledged after ack_timeout_s are sent again (the replay server restarted
 * and lost them, or the ack was lost: delivery is at least once). Discoveries go the same way,
 * fire and forget (replay records every verified discovery; the actor also logs it). */
#ifndef TG_REPLAY_LINK_H
#define TG_REPLAY_LINK_H

#include <stdint.h>

#include "common/config.h"
#include "common/wire.h"

typedef struct tg_replay_link tg_replay_link;

tg_replay_link *tg_replay_link_new(const tg_config *c, const char *endpoint, double ack_timeout_s);
void tg_replay_link_free(tg_replay_link *l);

/* Sends a game (its seq field is set here) and keeps it until acknowledged. */
int tg_replay_link_send_game(tg_replay_link *l, Tg__Game *g);
int tg_replay_link_send_discovery(tg_replay_link *l, Tg__Discovery *d);
/* Handles acks and resends; waits up to timeout_ms for a message. -1 only on a fatal error. */
int tg_replay_link_poll(tg_replay_link *l, int timeout_ms);
/* Games sent and not yet acknowledged. */
int tg_replay_link_unacked(const tg_replay_link *l);
/* Counters: games acknowledged, games resent. */
void tg_replay_link_counts(const tg_replay_link *l, uint64_t *acked, uint64_t *resent);

#endif
