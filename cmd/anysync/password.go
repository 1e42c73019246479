package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/remote"
)

func passwordCmd(g *globals) *cobra.Command {
	var oldFile, newFile string
	cmd := &cobra.Command{
		Use:   "password",
		Short: "Change the account password (re-wraps master.keys; no data is re-encrypted)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			keys, c, err := signedIn(ctx, g.home)
			if err != nil {
				return err
			}
			defer c.Close()
			oldPw, err := password(oldFile, false)
			if err != nil {
				return err
			}
			newPw, err := newPassword(newFile)
			if err != nil {
				return err
			}
			params, err := c.PreLogin(ctx, keys.Email)
			if err != nil {
				return fmt.Errorf("read password parameters: %w", err)
			}
			old, err := crypto.DerivePasswordSecrets(oldPw, params)
			if err != nil {
				return err
			}
			newParams, err := crypto.NewScryptParams()
			if err != nil {
				return err
			}
			sealed, err := crypto.SealMasterKeys(&keys.Keys, newPw, newParams)
			if err != nil {
				return err
			}
			secrets, err := crypto.DerivePasswordSecrets(newPw, newParams)
			if err != nil {
				return err
			}
			err = c.ChangePassword(ctx, remote.ChangePasswordRequest{
				OldProof: old.LoginProof[:], NewProof: secrets.LoginProof[:], NewParams: newParams, NewMasterKeys: sealed,
			})
			if errors.Is(err, remote.ErrWrongPassword) {
				return errors.New("wrong current password: nothing was changed")
			}
			if err != nil {
				return fmt.Errorf("change password: %w", err)
			}
			fmt.Println("Password changed. Other devices stay signed in; new devices log in with the new password.")
			return nil
		},
	}
	cmd.Flags().StringVar(&oldFile, "password-file", "", "read the current password from this file (else ANYSYNC_PASSWORD, else a prompt)")
	cmd.Flags().StringVar(&newFile, "new-password-file", "", "read the new password from this file (else ANYSYNC_NEW_PASSWORD, else a prompt)")
	return cmd
}

// newPassword reads the new password from a file, ANYSYNC_NEW_PASSWORD, or
// a no-echo prompt asked twice.
func newPassword(file string) ([]byte, error) {
	var pw []byte
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read new password file: %w", err)
		}
		pw = bytes.TrimRight(b, "\r\n")
	case os.Getenv("ANYSYNC_NEW_PASSWORD") != "":
		pw = []byte(os.Getenv("ANYSYNC_NEW_PASSWORD"))
	default:
		fd := int(os.Stdin.Fd())
		if !term.IsTerminal(fd) {
			return nil, errors.New("no new password: use a terminal, ANYSYNC_NEW_PASSWORD or --new-password-file")
		}
		fmt.Fprint(os.Stderr, "New password: ")
		a, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(os.Stderr, "Repeat new password: ")
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(a, b) {
			return nil, errors.New("passwords differ")
		}
		pw = a
	}
	if len(pw) == 0 {
		return nil, errors.New("empty new password")
	}
	return pw, nil
}
