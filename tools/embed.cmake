# Writes OUTPUT, a C file defining api_openapi_yaml[] and its length from INPUT.
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUTPUT} "/* generated from openapi.yaml by tools/embed.cmake */\n#include <stddef.h>\n"
     "extern const char api_openapi_yaml[];\nextern const size_t api_openapi_yaml_len;\n"
     "const char api_openapi_yaml[] = {\n${bytes}0x00};\nconst size_t api_openapi_yaml_len = ${len};\n")
