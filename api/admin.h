/* api/admin.h -- `tidings admin …`, the operator commands (api/admin.c). Thread: main. */
#ifndef TIDINGS_API_ADMIN_H
#define TIDINGS_API_ADMIN_H

/* argv[0] is "admin". Returns the process's exit status: 0, 1 (failed) or 2 (usage). */
int api_admin_main(int argc, char **argv);

#endif
