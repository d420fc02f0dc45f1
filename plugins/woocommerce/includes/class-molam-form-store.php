<?php
/**
 * Durable state on disk: atomic JSON files, the run lock, the journal and the maintenance flag.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * Everything the upgrader keeps in `<plugins dir>/.molam-agent/<plugin folder>/`, the agent's
 * own directory beside the plugin (`docs/agent.md`, On-disk layout).
 */
class Molam_Form_Store {

	/**
	 * Steps of an upgrade, in order; up to and including `staged` nothing live has changed.
	 */
	const UPGRADE_STEPS = array( 'prepared', 'backed_up', 'downloaded', 'staged', 'maintenance_on', 'options_saved', 'swap_started', 'aside', 'swapped', 'migrations_started', 'migrations_done', 'verified', 'committed' );

	/**
	 * Steps of a rollback.
	 */
	const ROLLBACK_STEPS = array( 'rollback_prepared', 'rollback_started', 'files_restored', 'db_restored', 'rolled_back' );

	/**
	 * Steps after which the live plugin is still the old one.
	 */
	const LIVE_UNTOUCHED = array( 'prepared', 'backed_up', 'downloaded', 'staged' );

	/**
	 * The flag's `until` while a failed rollback leaves the shop mixed: it must not expire.
	 */
	const NEVER = 4102444800;

	/**
	 * Lock handle held by this process.
	 *
	 * @var resource|null
	 */
	private static $lock = null;

	/**
	 * The journal of the operation in flight.
	 *
	 * @var array<string, mixed>
	 */
	public static $journal = array();

	/**
	 * Create the work directory and deny HTTP access to it.
	 *
	 * @return string The work directory.
	 */
	public static function prepare() {
		$work = Molam_Form_Settings::work_dir();
		$root = dirname( $work );
		if ( ! is_dir( $work ) && ! wp_mkdir_p( $work ) ) {
			throw new RuntimeException( "cannot create $work" );
		}
		foreach ( array(
			'.htaccess' => "Require all denied\nDeny from all\n",
			'index.php' => "<?php\n// Silence.\n",
		) as $name => $body ) {
			if ( ! file_exists( "$root/$name" ) ) {
				file_put_contents( "$root/$name", $body );
			}
		}
		return $work;
	}

	/**
	 * Write a file atomically: temp file, fsync, rename over the target, fsync of the directory.
	 *
	 * @param string $path  Target.
	 * @param string $bytes Content.
	 * @param int    $mode  File mode.
	 */
	public static function atomic_write( $path, $bytes, $mode = 0600 ) {
		$tmp = dirname( $path ) . '/.' . basename( $path ) . '.tmp-' . getmypid();
		$fh  = fopen( $tmp, 'wb' );
		if ( false === $fh ) {
			throw new RuntimeException( "cannot write $tmp" );
		}
		$ok = false !== fwrite( $fh, $bytes ) && fflush( $fh ) && fsync( $fh );
		fclose( $fh );
		if ( ! $ok ) {
			@unlink( $tmp ); // phpcs:ignore WordPress.PHP.NoSilencedErrors
			throw new RuntimeException( "cannot write $path (disk full?)" );
		}
		chmod( $tmp, $mode );
		if ( ! rename( $tmp, $path ) ) {
			throw new RuntimeException( "cannot rename $tmp" );
		}
		self::fsync_dir( dirname( $path ) );
	}

	/**
	 * Make a directory entry change (rename, unlink) durable.
	 *
	 * @param string $dir Directory.
	 */
	public static function fsync_dir( $dir ) {
		$fh = @fopen( $dir, 'r' ); // phpcs:ignore WordPress.PHP.NoSilencedErrors
		if ( $fh ) {
			@fsync( $fh ); // phpcs:ignore WordPress.PHP.NoSilencedErrors -- directories refuse fsync on some systems.
			fclose( $fh );
		}
	}

	/**
	 * Rename a directory and make the rename durable. Both names are in the same folder of
	 * wp-content/plugins, so rename(2) is atomic (WP_Filesystem's move() may copy instead).
	 *
	 * @param string $from Current name.
	 * @param string $to   New name.
	 * @throws RuntimeException When the rename fails.
	 */
	public static function move( $from, $to ) {
		if ( ! rename( $from, $to ) ) {
			throw new RuntimeException( "cannot move $from to $to" );
		}
		self::fsync_dir( dirname( $to ) );
	}

	/**
	 * Read a small JSON state file of the work directory.
	 *
	 * @param string $name    File name.
	 * @param mixed  $default Value when absent or unreadable.
	 * @return mixed
	 */
	public static function load( $name, $default = null ) {
		$path = Molam_Form_Settings::work_dir() . '/' . $name;
		if ( ! is_file( $path ) ) {
			return $default;
		}
		$data = json_decode( (string) file_get_contents( $path ), true );
		return null === $data ? $default : $data;
	}

	/**
	 * Write a small JSON state file atomically.
	 *
	 * @param string $name File name.
	 * @param mixed  $data Value.
	 */
	public static function store( $name, $data ) {
		self::prepare();
		self::atomic_write( Molam_Form_Settings::work_dir() . '/' . $name, wp_json_encode( $data, JSON_UNESCAPED_SLASHES | JSON_PRETTY_PRINT ) );
	}

	/**
	 * Take the run lock without waiting (flock: released by the kernel when the process dies).
	 *
	 * @return bool False when another run holds it.
	 */
	public static function lock() {
		if ( null !== self::$lock ) {
			return true;
		}
		$fh = fopen( self::prepare() . '/lock', 'c' );
		if ( false === $fh || ! flock( $fh, LOCK_EX | LOCK_NB ) ) {
			if ( $fh ) {
				fclose( $fh );
			}
			return false;
		}
		self::$lock = $fh;
		return true;
	}

	/**
	 * Release the run lock.
	 */
	public static function unlock() {
		if ( null !== self::$lock ) {
			flock( self::$lock, LOCK_UN );
			fclose( self::$lock );
			self::$lock = null;
		}
	}

	/**
	 * Run `$fn` under the run lock, released afterwards even when `$fn` throws; `$busy` when
	 * another run holds it. A caller that already holds the lock keeps it: only the call that
	 * took the lock releases it.
	 *
	 * @param callable $fn   Work.
	 * @param mixed    $busy Returned, `$fn` not called, when another run holds the lock.
	 * @return mixed
	 */
	public static function with_lock( callable $fn, $busy = null ) {
		$held = null !== self::$lock;
		if ( ! self::lock() ) {
			return $busy;
		}
		try {
			return $fn();
		} finally {
			if ( ! $held ) {
				self::unlock();
			}
		}
	}

	/**
	 * Whether a journal is on disk: an operation is unfinished (a crash interrupted it, or a
	 * rollback failed). A journal that cannot be read counts too: what it records is unknown.
	 *
	 * @return bool
	 */
	public static function journal_exists() {
		$path = Molam_Form_Settings::work_dir() . '/journal.json';
		clearstatcache( true, $path );
		return is_file( $path );
	}

	/**
	 * The journal of an interrupted operation, or null.
	 *
	 * @return array<string, mixed>|null
	 */
	public static function journal_load() {
		$data          = self::load( 'journal.json' );
		self::$journal = is_array( $data ) ? $data : array();
		return is_array( $data ) ? $data : null;
	}

	/**
	 * Record that step `$name` is about to happen (or just did), durably, then continue.
	 * A rollback step whose write fails (full disk) goes on anyway: every rollback operation
	 * re-checks the real state.
	 *
	 * @param string $name        Step.
	 * @param array  $updates     Facts to record with it.
	 * @param bool   $best_effort Do not stop on a failed write.
	 */
	public static function step( $name, $updates = array(), $best_effort = false ) {
		self::$journal            = array_merge( self::$journal, $updates );
		self::$journal['step']    = $name;
		self::$journal['steps'][] = array( $name, round( microtime( true ), 3 ) );
		self::$journal['updated_at'] = microtime( true );
		try {
			self::store( 'journal.json', self::$journal );
		} catch ( RuntimeException $e ) {
			if ( ! $best_effort ) {
				throw $e;
			}
		}
		if ( ! empty( self::$journal['maintenance'] ) ) {
			self::renew_flag();
		}
		self::fault( $name );
	}

	/**
	 * Persist extra facts without moving to another step.
	 *
	 * @param array $updates Facts.
	 */
	public static function save( $updates ) {
		self::$journal = array_merge( self::$journal, $updates );
		self::store( 'journal.json', self::$journal );
	}

	/**
	 * The operation is over: forget it.
	 */
	public static function journal_clear() {
		$path = Molam_Form_Settings::work_dir() . '/journal.json';
		if ( is_file( $path ) ) {
			unlink( $path );
			self::fsync_dir( dirname( $path ) );
		}
		self::$journal = array();
	}

	/**
	 * Crash-test hook: `MOLAM_FORM_FAULT=<step>[,<point>…]` kills this process with SIGKILL right
	 * after the step is journaled. Honoured only when the site defines MOLAM_FORM_FAULT_INJECTION
	 * (never on a live shop by accident).
	 *
	 * @param string $point Step or point name.
	 */
	public static function fault( $point ) {
		if ( ! defined( 'MOLAM_FORM_FAULT_INJECTION' ) || ! MOLAM_FORM_FAULT_INJECTION ) {
			return;
		}
		$spec = (string) getenv( 'MOLAM_FORM_FAULT' );
		if ( '' !== $spec && in_array( $point, explode( ',', $spec ), true ) && function_exists( 'posix_kill' ) ) {
			posix_kill( getmypid(), 9 );
		}
	}

	/**
	 * Path of the maintenance flag, the agent's: `<plugins dir>/.molam-agent/<folder>/maintenance.json`.
	 *
	 * @return string
	 */
	public static function flag_path() {
		return Molam_Form_Settings::work_dir() . '/maintenance.json';
	}

	/**
	 * Pause checkout: write the flag in the agent's format.
	 *
	 * @param string $from From version.
	 * @param string $to   To version.
	 * @param bool   $hold Keep it up until someone repairs the shop (failed rollback).
	 */
	public static function maintenance_on( $from, $to, $hold = false ) {
		$ttl  = (int) Molam_Form_Settings::get( 'maintenance_ttl_s' );
		$now  = microtime( true );
		$flag = array(
			'active'       => true,
			'until'        => $hold ? self::NEVER : $now + $ttl,
			'message'      => __( 'Checkout is paused for a few seconds while the payment plugin is being updated.', 'molam-form' ),
			'plugin'       => Molam_Form_Settings::get( 'plugin_name' ),
			'from_version' => $from,
			'to_version'   => $to,
			'pid'          => getmypid(),
			'started_at'   => $now,
		);
		if ( $hold ) {
			$flag['hold'] = true;
		}
		self::prepare();
		self::atomic_write( self::flag_path(), wp_json_encode( $flag, JSON_UNESCAPED_SLASHES ), 0644 );
		self::$journal['maintenance'] = ! $hold;
	}

	/**
	 * PHP has no heartbeat thread: every journal step pushes `until` forward instead.
	 */
	public static function renew_flag() {
		$path = self::flag_path();
		$flag = is_file( $path ) ? json_decode( (string) file_get_contents( $path ), true ) : null;
		if ( is_array( $flag ) && empty( $flag['hold'] ) ) {
			$flag['until'] = microtime( true ) + (int) Molam_Form_Settings::get( 'maintenance_ttl_s' );
			try {
				self::atomic_write( $path, wp_json_encode( $flag, JSON_UNESCAPED_SLASHES ), 0644 );
			} catch ( RuntimeException $e ) {
				// A full disk must not stop the step; the flag just expires.
				unset( $e );
			}
		}
	}

	/**
	 * Resume checkout.
	 */
	public static function maintenance_off() {
		$path = self::flag_path();
		if ( is_file( $path ) ) {
			unlink( $path );
		}
		self::$journal['maintenance'] = false;
	}

	/**
	 * Inode number of a path (without following a final symlink), or null when absent.
	 *
	 * @param string $path Path.
	 * @return int|null
	 */
	public static function inode( $path ) {
		clearstatcache( true, $path );
		$st = @lstat( $path ); // phpcs:ignore WordPress.PHP.NoSilencedErrors
		return false === $st ? null : (int) $st['ino'];
	}

	/**
	 * Delete a tree (never following symlinks out of it).
	 *
	 * @param string $path Directory or file.
	 */
	public static function remove_tree( $path ) {
		if ( is_link( $path ) || is_file( $path ) ) {
			unlink( $path );
			return;
		}
		if ( ! is_dir( $path ) ) {
			return;
		}
		foreach ( scandir( $path ) as $entry ) {
			if ( '.' !== $entry && '..' !== $entry ) {
				self::remove_tree( "$path/$entry" );
			}
		}
		rmdir( $path );
	}

	/**
	 * Number of regular files under a directory.
	 *
	 * @param string $dir Directory.
	 * @return int
	 */
	public static function count_files( $dir ) {
		if ( ! is_dir( $dir ) ) {
			return 0;
		}
		$n  = 0;
		$it = new RecursiveIteratorIterator( new RecursiveDirectoryIterator( $dir, FilesystemIterator::SKIP_DOTS ) );
		foreach ( $it as $file ) {
			$n += $file->isFile() ? 1 : 0;
		}
		return $n;
	}
}
