package config

// redis checks the Redis instances. bootstrap only checks them against
// expect, so there is nothing declared to cross-check.
func (v *validator) redis() {
	instances := seen{}
	for i, r := range v.c.Redis {
		p := v.instance("redis", i, r.Name, instances)
		v.hostPort(p+".address", r.Address)
		v.tls(p, r.TLS, false, "")
		if r.Password != nil {
			v.ref(p+".password", *r.Password, false)
		}
		if r.DB < 0 || r.DB > 15 {
			v.add(p+".db", "must be between 0 and 15, got %d", r.DB)
		}
		if r.Expect.Role != "" {
			v.enum(p+".expect.role", r.Expect.Role, "master", "replica", "slave")
		}
		if mp := r.Expect.MaxmemoryPolicy; mp != "" {
			v.enum(p+".expect.maxmemoryPolicy", mp, "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
				"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")
		}
	}
}
