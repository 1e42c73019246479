//go:build unix && !linux

package backup

// oNoAtime: other systems have no O_NOATIME.
const oNoAtime = 0
