#ifndef WELT_KERNELS_H
#define WELT_KERNELS_H

/* Row flags (one byte per row). */
#define WELT_FLAG_STOPPED 1u  /* the word is complete (rule matched or EOS) */
#define WELT_FLAG_FINISHED 2u /* stopped, or reached the word length limit */

/* Error bits (welt_step_params.error, welt_advance's error word). */
#define WELT_ERR_TOKEN_RANGE 1u   /* a sampled token id was >= the vocabulary */
#define WELT_ERR_NOT_ALLOWED 2u   /* a sampled token was forbidden by the mask */
#define WELT_ERR_NO_TOKEN 4u      /* a running row had no allowed token with finite logit */

/* Device pointers to the tables, in the layout of welt's table blob (little-endian u16/u64).
   NULL where the decoder's tables are compiled in as __constant__ data. */
typedef struct welt_tables {
    const unsigned short *entries;      /* states x width entries: next state | WELT_STOP_BIT */
    const unsigned short *class_of;     /* V token classes, or NULL in the direct layout */
    const unsigned long long *masks;    /* states x mask_words bitsets */
} welt_tables;

/* Arguments of the fused step kernels (passed by value). */
typedef struct welt_step_params {
    welt_tables tables;
    void *logits;                     /* [batch x row_stride] f32, f16 or bf16 */
    unsigned long long row_stride;    /* elements between rows, >= V */
    unsigned int batch;
    unsigned int max_word_len;        /* tokens */
    unsigned short *states;           /* [batch] automaton state */
    unsigned short *lengths;          /* [batch] tokens in the current word */
    unsigned char *flags;             /* [batch] WELT_FLAG_* */
    unsigned int *next_tokens;        /* [batch] out: chosen token, PAD for finished rows */
    unsigned int *running;            /* [1] rows not finished; 0 = all rows done */
    unsigned int *error;              /* [1] WELT_ERR_* bits, or'ed */
    float temperature;                /* <= 0: greedy (argmax, lowest id on ties) */
    unsigned int top_k;               /* 0: off */
    float top_p;                      /* >= 1: off */
    unsigned long long seed;          /* Philox key */
    unsigned int *draws;              /* [batch] per-row count of random draws: with the row,
                                         the Philox counter, so a replayed graph never repeats */
} welt_step_params;

#endif /* WELT_KERNELS_H */
