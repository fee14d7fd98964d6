/* The actor's connection to the replay server. Each finished game is one Game message (so a
 * game is never half-sent), kept until a GameAck acknowledges it: the one whose seq echoes
 * Game.seq, or, from a server that does not echo it, the oldest. A game unacknowledged after
 * ack_timeout_s is sent again (the server restarted and lost it, or the ack was lost: delivery is
 * at least once); after 10 sends it is dropped with an error (the server keeps rejecting it).
 * Discoveries travel the same way on a second socket, so their immediate acks never mix with
 * the games' (which come when the games are durable). */
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
/* Games and discoveries sent and not yet acknowledged. */
int tg_replay_link_unacked(const tg_replay_link *l);
/* Counters: games acknowledged, games resent. */
void tg_replay_link_counts(const tg_replay_link *l, uint64_t *acked, uint64_t *resent);

#endif
