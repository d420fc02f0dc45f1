<?php
/**
 * Encrypted retention archives in the agent's `.mab` format (AES-256-GCM over a tar stream).
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * Writes `<work>/backups/<plugin>-<version>-<YYYYmmddTHHMMSSZ>-<tx>.mab` exactly as the agent
 * does (`docs/agent.md`, Backups): header `MOLAMBK1` + 8 random bytes, then chunks of at most
 * 1 MiB of plaintext, each `nonce(12) || u32 length || ciphertext || tag(16)` with AAD =
 * header || u64 index || last flag; the plaintext is a tar stream holding `manifest.json`,
 * `db/<table>.jsonl`, `db/options.jsonl` and `files/…`. The agent can read PHP's archives.
 */
class Molam_Form_Backup {

	const MAGIC = 'MOLAMBK1';
	const CHUNK = 1048576;

	/**
	 * Open output file.
	 *
	 * @var resource
	 */
	private $out;

	/**
	 * Key (32 bytes).
	 *
	 * @var string
	 */
	private $key;

	/**
	 * Archive header (16 bytes).
	 *
	 * @var string
	 */
	private $header;

	/**
	 * Plaintext not yet sealed.
	 *
	 * @var string
	 */
	private $buf = '';

	/**
	 * Next chunk index.
	 *
	 * @var int
	 */
	private $index = 0;

	/**
	 * The backup key: 32 random bytes kept in an option (autoload off), created on first use.
	 * The key lives in the database and the archives on disk, so a copy of either alone is
	 * unreadable.
	 *
	 * @return string
	 */
	public static function key() {
		$b64 = get_option( 'molam_form_backup_key' );
		$key = is_string( $b64 ) ? base64_decode( $b64, true ) : false;
		if ( false === $key || 32 !== strlen( $key ) ) {
			$key = random_bytes( 32 );
			update_option( 'molam_form_backup_key', base64_encode( $key ), false );
		}
		return $key;
	}

	/**
	 * Start an archive.
	 *
	 * @param resource $out Output file.
	 * @param string   $key Key.
	 */
	private function __construct( $out, $key ) {
		$this->out    = $out;
		$this->key    = $key;
		$this->header = self::MAGIC . random_bytes( 8 );
		fwrite( $out, $this->header );
	}

	/**
	 * Encrypt plaintext, one full chunk held back (the last chunk is only known at close).
	 *
	 * @param string $data Plaintext.
	 */
	private function write( $data ) {
		$this->buf .= $data;
		while ( strlen( $this->buf ) > self::CHUNK ) {
			$this->emit( substr( $this->buf, 0, self::CHUNK ), false );
			$this->buf = substr( $this->buf, self::CHUNK );
		}
	}

	/**
	 * Seal one chunk.
	 *
	 * @param string $plain Plaintext.
	 * @param bool   $last  Final chunk.
	 */
	private function emit( $plain, $last ) {
		$nonce = random_bytes( 12 );
		$aad   = $this->header . pack( 'J', $this->index ) . ( $last ? "\x01" : "\x00" );
		$tag   = '';
		$ct    = openssl_encrypt( $plain, 'aes-256-gcm', $this->key, OPENSSL_RAW_DATA, $nonce, $tag, $aad, 16 );
		fwrite( $this->out, $nonce . pack( 'N', strlen( $ct ) + 16 ) . $ct . $tag );
		++$this->index;
	}

	/**
	 * A tar member (ustar; a pax header carries names over 100 bytes).
	 *
	 * @param string $name Member name.
	 * @param string $data Content.
	 * @param int    $mode File mode.
	 */
	private function tar_member( $name, $data, $mode = 0644 ) {
		if ( strlen( $name ) > 99 ) {
			$base = strlen( ' path=' . $name . "\n" );
			$len  = $base + 1;
			while ( $base + strlen( (string) $len ) !== $len ) {
				$len = $base + strlen( (string) $len );
			}
			$rec = $len . ' path=' . $name . "\n";
			$this->tar_header( 'PaxHeader', strlen( $rec ), 0644, 'x' );
			$this->write( $rec . str_repeat( "\0", ( 512 - strlen( $rec ) % 512 ) % 512 ) );
			$name = substr( $name, -99 );
		}
		$this->tar_header( $name, strlen( $data ), $mode, '0' );
		$this->write( $data . str_repeat( "\0", ( 512 - strlen( $data ) % 512 ) % 512 ) );
	}

	/**
	 * One 512-byte ustar header.
	 *
	 * @param string $name Name (≤ 99 bytes).
	 * @param int    $size Size.
	 * @param int    $mode Mode.
	 * @param string $type Type flag.
	 */
	private function tar_header( $name, $size, $mode, $type ) {
		$h  = str_pad( $name, 100, "\0" );
		$h .= sprintf( "%07o\0%07o\0%07o\0%011o\0%011o\0", $mode & 0777, 0, 0, $size, time() );
		$h .= '        ' . $type . str_repeat( "\0", 100 ) . "ustar\x0000" . str_repeat( "\0", 247 );
		$sum = 0;
		for ( $i = 0; $i < 512; $i++ ) {
			$sum += ord( $h[ $i ] );
		}
		$h = substr_replace( $h, sprintf( "%06o\0 ", $sum ), 148, 8 );
		$this->write( $h );
	}

	/**
	 * Finish the tar stream and the archive.
	 */
	private function close() {
		$this->write( str_repeat( "\0", 1024 ) );
		$this->emit( $this->buf, true );
		$this->buf = '';
	}

	/**
	 * Value as the agent's JSON rows carry it (binary tagged `$b64`).
	 *
	 * @param mixed $v Value.
	 * @return mixed
	 */
	private static function json_value( $v ) {
		return is_string( $v ) && ! mb_check_encoding( $v, 'UTF-8' ) ? array( '$b64' => base64_encode( $v ) ) : $v;
	}

	/**
	 * Write the archive of the plugin directory, its tables and option rows.
	 *
	 * @param string $path       Final archive path (written as a `.part` file, then renamed).
	 * @param string $plugin     Plugin name.
	 * @param string $version    Installed version.
	 * @param string $plugin_dir Plugin directory.
	 * @param array  $tables     Tables.
	 * @param string $prefix     Option prefix.
	 * @return array{0:int, 1:string} Size and SHA-256 of the archive.
	 */
	public static function create( $path, $plugin, $version, $plugin_dir, $tables, $prefix ) {
		global $wpdb;
		wp_mkdir_p( dirname( $path ) );
		$part = dirname( $path ) . '/.' . basename( $path ) . '.part';
		$fh   = fopen( $part, 'xb' );
		if ( false === $fh ) {
			throw new RuntimeException( "cannot write $part" );
		}
		chmod( $part, 0600 );
		try {
			$w      = new self( $fh, self::key() );
			$parts  = array();
			$dumps  = array();
			$exists = array_flip( (array) $wpdb->get_col( 'SHOW TABLES' ) );
			foreach ( $tables as $table ) {
				if ( ! isset( $exists[ $table ] ) ) {
					continue;
				}
				$ddl   = $wpdb->get_row( "SHOW CREATE TABLE `$table`", ARRAY_N ); // phpcs:ignore WordPress.DB
				$cols  = $wpdb->get_col( "SHOW COLUMNS FROM `$table`" ); // phpcs:ignore WordPress.DB
				// Rows are read 1,000 at a time in primary-key order: a large orders table must
				// not be loaded whole into the memory of a web request.
				$keys  = $wpdb->get_col( "SHOW KEYS FROM `$table` WHERE Key_name = 'PRIMARY'", 4 ); // phpcs:ignore WordPress.DB
				$order = $keys ? ' ORDER BY `' . implode( '`, `', $keys ) . '`' : '';
				$lines = '';
				$count = 0;
				for ( $offset = 0; ; $offset += 1000 ) {
					$rows = $wpdb->get_results( "SELECT * FROM `$table`$order LIMIT 1000 OFFSET $offset", ARRAY_N ); // phpcs:ignore WordPress.DB
					foreach ( (array) $rows as $row ) {
						$lines .= wp_json_encode( array_map( array( __CLASS__, 'json_value' ), $row ) ) . "\n";
					}
					$count += count( (array) $rows );
					if ( count( (array) $rows ) < 1000 ) {
						break;
					}
				}
				$parts[]                   = array(
					'name'    => $table,
					'ddl'     => $ddl[1] ?? '',
					'columns' => $cols,
					'rows'    => $count,
				);
				$dumps[ "db/$table.jsonl" ] = $lines;
			}
			$opts  = $wpdb->get_results( $wpdb->prepare( "SELECT * FROM {$wpdb->options} WHERE option_name LIKE %s", $wpdb->esc_like( $prefix ) . '%' ), ARRAY_N );
			$lines = '';
			foreach ( (array) $opts as $row ) {
				$lines .= wp_json_encode( array_map( array( __CLASS__, 'json_value' ), $row ) ) . "\n";
			}
			$dumps['db/options.jsonl'] = $lines;
			$manifest                  = array(
				'format'     => 1,
				'plugin'     => $plugin,
				'version'    => $version,
				'created_at' => gmdate( 'c' ),
				'db'         => array(
					'engine'  => 'mysql',
					'tables'  => $parts,
					'options' => array(
						'table'   => $wpdb->options,
						'where'   => $wpdb->prepare( 'option_name LIKE %s', $wpdb->esc_like( $prefix ) . '%' ),
						'columns' => $wpdb->get_col( "SHOW COLUMNS FROM {$wpdb->options}" ),
						'rows'    => count( (array) $opts ),
					),
				),
			);
			$w->tar_member( 'manifest.json', wp_json_encode( $manifest, JSON_UNESCAPED_SLASHES ) );
			foreach ( $dumps as $name => $data ) {
				$w->tar_member( $name, $data );
			}
			$it = new RecursiveIteratorIterator( new RecursiveDirectoryIterator( $plugin_dir, FilesystemIterator::SKIP_DOTS ) );
			foreach ( $it as $file ) {
				if ( $file->isFile() && ! $file->isLink() ) {
					$rel = substr( $file->getPathname(), strlen( $plugin_dir ) + 1 );
					$w->tar_member( 'files/' . $rel, (string) file_get_contents( $file->getPathname() ), $file->getPerms() );
				}
			}
			$w->close();
			fflush( $fh );
			fsync( $fh );
		} catch ( Throwable $e ) {
			fclose( $fh );
			unlink( $part );
			throw $e;
		}
		fclose( $fh );
		rename( $part, $path );
		Molam_Form_Store::fsync_dir( dirname( $path ) );
		return array( filesize( $path ), hash_file( 'sha256', $path ) );
	}

	/**
	 * Decrypt an archive back to its tar stream (for tests and a manual restore).
	 *
	 * @param string $path Archive.
	 * @param string $key  Key.
	 * @return string Plaintext tar.
	 * @throws RuntimeException On tampering or truncation.
	 */
	public static function decrypt( $path, $key ) {
		$raw    = (string) file_get_contents( $path );
		$header = substr( $raw, 0, 16 );
		if ( 16 !== strlen( $header ) || 0 !== strpos( $header, self::MAGIC ) ) {
			throw new RuntimeException( 'not a molam-agent backup archive' );
		}
		$pos    = 16;
		$chunks = array();
		while ( $pos < strlen( $raw ) ) {
			if ( $pos + 16 > strlen( $raw ) ) {
				throw new RuntimeException( 'backup archive is truncated' );
			}
			$nonce = substr( $raw, $pos, 12 );
			$len   = unpack( 'N', substr( $raw, $pos + 12, 4 ) )[1];
			$chunks[] = array( $nonce, substr( $raw, $pos + 16, $len ) );
			$pos     += 16 + $len;
		}
		$plain = '';
		foreach ( $chunks as $i => list( $nonce, $sealed ) ) {
			$aad = $header . pack( 'J', $i ) . ( $i === count( $chunks ) - 1 ? "\x01" : "\x00" );
			$pt  = openssl_decrypt( substr( $sealed, 0, -16 ), 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $nonce, substr( $sealed, -16 ), $aad );
			if ( false === $pt ) {
				throw new RuntimeException( 'backup archive failed authentication (wrong key, tampered or truncated)' );
			}
			$plain .= $pt;
		}
		return $plain;
	}
}
