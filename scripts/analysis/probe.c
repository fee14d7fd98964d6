/* What a checkpoint proposes: samples K actions for T(2,2,2) (or the tensor in the file named
 * by PROBE_TENSOR, S^3 integers) after playing the given actions, and prints the value then one
 * decoded action per line (12 integers: u, v, w). One-off analysis for docs/results.md; build:
 *   cc -O2 -std=gnu11 -pthread -I. -Ibuild/gen -I/usr/include/hdf5/serial scripts/analysis/probe.c \
 *      -o /tmp/probe build/libtg.a ...                  # the libraries of the link line of bin/tg (make V=1)
 * usage: /tmp/probe RUN_DIR/config.yaml CHECKPOINT K [12 integers per action played first]... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/config.h"
#include "common/err.h"
#include "common/fact.h"
#include "common/game.h"
#include "actor/decode.h"
#include "learner/net.h"
#include "learner/net_config.h"
#include "learner/checkpoint.h"

int main(int argc, char **argv)
{
    tg_config c;
    if (tg_config_load(&c, argv[1]) || tg_config_finish(&c)) { fprintf(stderr, "%s\n", tg_errmsg()); return 1; }
    tg_net_config nc;
    if (tg_net_config_load_file(argv[2], &nc)) { fprintf(stderr, "%s\n", tg_errmsg()); return 1; }
    int K = atoi(argv[3]);
    tg_net *net = tg_net_new(&nc, "cpu", 1, 1, 1);
    if (!net || tg_net_load(net, argv[2])) { fprintf(stderr, "%s\n", tg_errmsg()); return 1; }
    int S = c.game.S, S3 = S * S * S, T = c.game.history + 1;
    int32_t *tens = calloc(S3, 4);
    tg_matmul_tensor(c.game.dims[0], S, tens);
    if (getenv("PROBE_TENSOR")) { FILE *f = fopen(getenv("PROBE_TENSOR"), "r"); for (int i = 0; i < S3; i++) if (fscanf(f, "%d", &tens[i]) != 1) return 2; fclose(f); }
    tg_game *g = tg_game_new(tens, S, 0, c.game.r_limit, c.game.history);
    for (int i = 4; i + 12 <= argc; i += 12) {
        int8_t a[12];
        for (int j = 0; j < 12; j++) a[j] = (int8_t)atoi(argv[i + j]);
        tg_game_play(g, a);
    }
    float *ft = malloc(sizeof(float) * T * S3), sc[8];
    tg_game_features(g, ft, c.game.n_scalars, sc);
    int32_t *tok = malloc(sizeof(int32_t) * K * c.game.n_steps);
    float q[64], v;
    tg_eval_out o = {.tokens = tok, .quantiles = q, .value = &v};
    if (tg_net_sample(net, ft, sc, 1, K, (float)c.infer.temperature, NULL, 7, &o)) { fprintf(stderr, "%s\n", tg_errmsg()); return 1; }
    printf("value %f\n", v);
    tg_decoder *d = tg_decoder_new(&c.game.F, S, c.game.n_steps, 1);
    int sizes[3] = {4, 4, 4};
    for (int k = 0; k < K; k++) {
        int8_t a[12];
        if (!tg_decode_action(d, tok + k * c.game.n_steps, NULL, sizes, a)) { printf("invalid\n"); continue; }
        for (int j = 0; j < 12; j++) printf("%d ", a[j]);
        printf("\n");
    }
    return 0;
}
