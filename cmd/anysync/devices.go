package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/daemon"
	"github.com/anysync/anysync/remote"
)

// accessKeys reads this home's access keys.
func accessKeys(home string) (*crypto.AccessKeys, error) {
	keys, err := crypto.ReadAccessKeys(filepath.Join(home, daemon.AccessKeysFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, daemon.ErrNotSignedIn
	} else if err != nil {
		return nil, fmt.Errorf("read access keys: %w", err)
	}
	return keys, nil
}

// signedIn reads this home's access keys and dials the server with them.
func signedIn(ctx context.Context, home string) (*crypto.AccessKeys, *remote.Client, error) {
	keys, err := accessKeys(home)
	if err != nil {
		return nil, nil, err
	}
	c, err := remote.Dial(ctx, keys.Server, keys.Fingerprint)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", keys.Server, err)
	}
	return keys, c.WithToken(keys.Token), nil
}

func devicesCmd(g *globals) *cobra.Command {
	var revoke string
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List the account's devices, or revoke one with --revoke ID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			_, c, err := signedIn(ctx, g.home)
			if err != nil {
				return err
			}
			defer c.Close()
			if revoke != "" {
				if err := c.RevokeDevice(ctx, revoke); err != nil {
					return fmt.Errorf("revoke device %s: %w", revoke, err)
				}
				fmt.Printf("Revoked device %s: its token is refused from now on.\n", revoke)
				return nil
			}
			devs, err := c.Devices(ctx)
			if err != nil {
				return fmt.Errorf("list devices: %w", err)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tNAME\tLAST SEEN\tCREATED\t")
			for _, d := range devs {
				mark := ""
				if d.Current {
					mark = "(this device)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.Name, d.LastSeen.Local().Format(time.DateTime), d.Created.Local().Format(time.DateOnly), mark)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&revoke, "revoke", "", "revoke the device with this ID")
	return cmd
}

func logoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Revoke this device's token and forget its keys (unmount first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if conn, err := net.Dial("unix", filepath.Join(g.home, daemon.SocketFile)); err == nil {
				_ = conn.Close()
				return errors.New("the drive is mounted from this home: run `anysync unmount DIR` first")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			_, c, err := signedIn(ctx, g.home)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Logout(ctx); err != nil && !errors.Is(err, remote.ErrUnauthenticated) {
				return fmt.Errorf("revoke this device's token: %w (nothing was removed; try again when the server is reachable)", err)
			}
			if err := os.Remove(filepath.Join(g.home, daemon.AccessKeysFile)); err != nil {
				return fmt.Errorf("remove access keys: %w", err)
			}
			fmt.Println("Signed out: this device's token is revoked and its keys are removed.")
			return nil
		},
	}
}

func recoveryKeyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "recovery-key",
		Short: "Print the account's recovery key: it unlocks master.keys without the password",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, err := accessKeys(g.home)
			if err != nil {
				return err
			}
			fmt.Fprintln(os.Stderr, "Keep this key offline (on paper): anyone holding it and your email can read your files.")
			fmt.Println(crypto.FormatRecoveryKey(keys.Keys.Recovery))
			return nil
		},
	}
}
