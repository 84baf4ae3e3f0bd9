/* tests/fuzz/replay_main.c -- a fuzz target without libFuzzer: every file in the directories
 * (or the files) named on the command line goes once through LLVMFuzzerTestOneInput. The
 * normal and ASan builds link each target with this, and ctest replays its seed corpus
 * (fuzz_corpus_*): the checks then run under gcc too, and a past finding's regression seed
 * fails there as it failed the fuzzer. Fails when no input was found. */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <sys/stat.h>

/* Feeds the file at path to the target; false when it cannot be read. */
static bool replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    uint8_t *data = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *more = realloc(data, cap);
            FUZZ_CHECK(more != NULL);
            data = more;
        }
        size_t n = fread(data + size, 1, cap - size, f);
        size += n;
        if (n == 0)
            break;
    }
    fclose(f);
    /* an exact-size copy, as libFuzzer hands it over, so a read past the end is caught */
    uint8_t *exact = malloc(size ? size : 1);
    FUZZ_CHECK(exact != NULL);
    memcpy(exact, data, size);
    free(data);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    return true;
}

int main(int argc, char **argv)
{
    size_t replayed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: not found\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            replayed += replay_file(argv[i]);
            continue;
        }
        DIR *dir = opendir(argv[i]);
        FUZZ_CHECK(dir != NULL);
        for (struct dirent *e; (e = readdir(dir)) != NULL;) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            replayed += replay_file(path);
        }
        closedir(dir);
    }
    printf("replayed %zu inputs\n", replayed);
    return replayed ? 0 : 1;
}
