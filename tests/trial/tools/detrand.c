// LD_PRELOAD shim: deterministic getrandom() seeded by DETRAND_SEED (test harness only)
#define _GNU_SOURCE
#include <stdlib.h>
#include <stdint.h>
#include <sys/types.h>
static uint64_t st; static int inited;
static uint64_t next(void){ uint64_t z=(st+=0x9E3779B97F4A7C15ULL); z=(z^(z>>30))*0xBF58476D1CE4E5B9ULL; z=(z^(z>>27))*0x94D049BB133111EBULL; return z^(z>>31);}
ssize_t getrandom(void *buf, size_t len, unsigned int flags){
  if(!inited){ const char*s=getenv("DETRAND_SEED"); st = s? strtoull(s,0,10)*1000003ULL+7 : 12345; inited=1; }
  unsigned char*p=buf; for(size_t i=0;i<len;i+=8){ uint64_t v=next(); for(size_t j=0;j<8&&i+j<len;j++) p[i+j]=(unsigned char)(v>>(8*j)); }
  return (ssize_t)len;
}
int getentropy(void *buf, size_t len){ getrandom(buf,len,0); return 0; }
