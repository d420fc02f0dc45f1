<?php
/**
 * The WP-cron job's clean-up: outbox answers and old backup archives, under the run lock.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * What the 10-minute cron job deletes after the upgrade check and the payment-health report.
 *
 * Archives (`<work>/backups/<plugin>-<version>-<YYYYmmddTHHMMSSZ>-<tx>.mab`, one per upgrade)
 * are kept `RETENTION_DAYS` (the agent's `retention_days`, counted from the time in the file
 * name as the agent's `prune` does), and always kept whatever their age:
 *
 * - the newest archive of each plugin name found in the folder;
 * - the archive of the version kept ready for an instant rollback (`current.json`'s
 *   generation, written by the upgrade that installed the present version): an operator-forced
 *   rollback is accepted while it is younger than `forced_rollback_max_age_s` counted from its
 *   own creation, not from the upgrade, so one may ask for that version at any time;
 * - every archive a queued report names (`backup_path`) or belongs to (a queued report whose
 *   idempotency key starts with the archive's transaction id).
 *
 * Nothing is deleted while a journal exists (an operation a crash interrupted, or a rollback
 * that failed and keeps checkout paused): whoever repairs the shop may need any archive.
 */
class Molam_Form_Housekeeping {

	/**
	 * Days an archive is kept: the agent's default `retention_days`. Filter
	 * `molam_form_backup_retention_days` (at least 1, as the agent's configuration requires).
	 */
	const RETENTION_DAYS = 30;

	/**
	 * At most this many archives are deleted per run: a shop that never pruned (years of
	 * archives) catches up over a few runs instead of one long cron request.
	 */
	const DELETE_PER_RUN = 50;

	/**
	 * At most this many entries of the backups folder are read per run. Safe with more: an
	 * archive not read this run is not deleted, and the newest one read is kept.
	 */
	const SCAN_PER_RUN = 5000;

	/**
	 * The agent's archive names (`molam_agent/backup.py`): plugin, version, UTC time, transaction.
	 */
	const ARCHIVE_PATTERN = '/^(?P<plugin>.+)-(?P<version>[^-]+(?:-[^-]+)*)-(?P<stamp>\d{8}T\d{6}Z)-(?P<id>[0-9a-f]+)\.mab$/';

	/**
	 * The same name after `<plugin>-`, for the configured plugin name (which may hold dashes).
	 */
	const ARCHIVE_TAIL = '/^(?P<version>[^-]+(?:-[^-]+)*)-(?P<stamp>\d{8}T\d{6}Z)-(?P<id>[0-9a-f]+)\.mab$/';

	/**
	 * Option: the last run's result.
	 */
	const LAST_RUN = 'molam_form_housekeeping_last_run';

	/**
	 * Option: the archives deleted, newest last, at most `LOG_MAX` entries.
	 */
	const LOG = 'molam_form_archives_deleted';

	/**
	 * Entries kept in `LOG`.
	 */
	const LOG_MAX = 200;

	/**
	 * The retention of archives in days (filterable, never under one day).
	 *
	 * @return int
	 */
	public static function retention_days() {
		return max( 1, (int) apply_filters( 'molam_form_backup_retention_days', self::RETENTION_DAYS ) );
	}

	/**
	 * The cron job's clean-up, under the run lock (an upgrade writes the answers row, the
	 * journal and the archives: pruning beside one could drop what it just wrote). Skipped when
	 * another run holds the lock: the next cron run prunes. Never throws. The result is kept in
	 * `molam_form_housekeeping_last_run`, each deleted archive in `molam_form_archives_deleted`.
	 *
	 * @param int|null $now Unix time.
	 * @return array{status:string, pruned_results?:int, autoload_off?:int, archives?:array, reason?:string, error?:string}
	 */
	public static function run( $now = null ) {
		$now = $now ?? time();
		try {
			$out = Molam_Form_Store::with_lock(
				function () use ( $now ) {
					// Read once for both: under the lock nothing queues a report meanwhile.
					$pending = Molam_Form_Outbox::pending();
					$out     = array(
						'status'         => 'success',
						'pruned_results' => Molam_Form_Outbox::prune_results( Molam_Form_Outbox::results_retention_s(), $now, $pending ),
						'autoload_off'   => Molam_Form_Outbox::autoload_off(),
						'archives'       => self::prune_archives( $now, $pending ),
					);
					// Under the lock: only the run that deleted appends, one at a time.
					self::log_deleted( $out['archives']['deleted'], $now );
					return $out;
				},
				array(
					'status' => 'skipped',
					'reason' => 'another run holds the lock',
				)
			);
		} catch ( Throwable $e ) {
			$out = array(
				'status' => 'failed',
				'error'  => $e->getMessage(),
			);
		}
		self::record( $out, $now );
		return $out;
	}

	/**
	 * Keep the run's result (any process may write it: it is only the latest word).
	 *
	 * @param array $out Result.
	 * @param int   $now Unix time.
	 */
	private static function record( $out, $now ) {
		update_option( self::LAST_RUN, array_merge( $out, array( 'at' => $now ) ), false );
	}

	/**
	 * Append deleted archives to the log, keeping its newest `LOG_MAX` entries.
	 *
	 * @param array $deleted Deleted archives.
	 * @param int   $now     Unix time.
	 */
	private static function log_deleted( $deleted, $now ) {
		if ( ! $deleted ) {
			return;
		}
		wp_cache_delete( self::LOG, 'options' );
		$log = get_option( self::LOG, array() );
		$log = is_array( $log ) ? $log : array();
		foreach ( $deleted as $entry ) {
			$log[] = array_merge( $entry, array( 'deleted_at' => $now ) );
		}
		update_option( self::LOG, array_slice( $log, -self::LOG_MAX ), false );
	}

	/**
	 * Delete archives past the retention, oldest first, at most `DELETE_PER_RUN`. The caller
	 * holds the run lock. Only regular files directly in `<work>/backups` whose names are
	 * archive names are deleted: a symlink is neither followed nor deleted, and a folder that
	 * is a symlink (or resolves outside the work folder) is not read at all.
	 *
	 * @param int|null   $now     Unix time.
	 * @param array|null $pending The outbox queue, `Molam_Form_Outbox::pending()` (read when null).
	 * @return array{status:string, deleted:array, kept:int, left:int, errors:string[], retention_days:int, reason?:string}
	 */
	public static function prune_archives( $now = null, $pending = null ) {
		$now  = $now ?? time();
		$days = self::retention_days();
		$out  = array(
			'status'         => 'success',
			'deleted'        => array(),
			'kept'           => 0,
			'left'           => 0,
			'errors'         => array(),
			'retention_days' => $days,
		);
		if ( Molam_Form_Store::journal_exists() ) {
			// One that cannot be read blocks too: what it needs is unknown.
			$journal       = Molam_Form_Store::load( 'journal.json' );
			$step          = is_array( $journal ) && is_string( $journal['step'] ?? null ) ? $journal['step'] : 'unknown';
			$out['status'] = 'skipped';
			$out['reason'] = "an operation is unfinished (journal step $step): no archive is deleted until it ends";
			return $out;
		}
		$work = Molam_Form_Settings::work_dir();
		$dir  = "$work/backups";
		clearstatcache();
		if ( false === @lstat( $dir ) ) { // phpcs:ignore WordPress.PHP.NoSilencedErrors -- absent until the first upgrade.
			return $out;
		}
		$real_work = realpath( $work );
		if ( is_link( $work ) || is_link( $dir ) || ! is_dir( $dir ) || false === $real_work || realpath( $dir ) !== $real_work . '/backups' ) {
			$out['status'] = 'skipped';
			$out['reason'] = "$dir is not a plain folder inside the work folder: not read";
			return $out;
		}
		$archives = self::list_archives( $dir );
		if ( null === $archives ) {
			$out['status'] = 'failed';
			$out['reason'] = "cannot read $dir";
			return $out;
		}
		$protected = self::protected_archives( $pending ?? Molam_Form_Outbox::pending() );
		$newest    = array();
		foreach ( $archives as $name => $a ) {
			$best = $newest[ $a['plugin'] ] ?? null;
			if ( null === $best || array( $a['time'], $name ) > array( $archives[ $best ]['time'], $best ) ) {
				$newest[ $a['plugin'] ] = $name;
			}
		}
		$newest = array_flip( $newest );
		$cutoff = $now - $days * 86400;
		$doomed = array();
		foreach ( $archives as $name => $a ) {
			if ( $a['time'] < $cutoff && ! isset( $newest[ $name ] ) && ! isset( $protected['names'][ $name ] ) && ! isset( $protected['ids'][ $a['id'] ] ) ) {
				$doomed[] = $name;
			}
		}
		usort( $doomed, fn( $x, $y ) => array( $archives[ $x ]['time'], $x ) <=> array( $archives[ $y ]['time'], $y ) );
		foreach ( array_slice( $doomed, 0, self::DELETE_PER_RUN ) as $name ) {
			$path = "$dir/$name";
			clearstatcache( true, $path );
			$st = @lstat( $path ); // phpcs:ignore WordPress.PHP.NoSilencedErrors -- it may have gone since the listing.
			if ( false === $st ) {
				continue;
			}
			if ( 0100000 !== ( $st['mode'] & 0170000 ) ) {
				$out['errors'][] = "$name is no longer a regular file: not deleted";
				continue;
			}
			// unlink() never follows a symlink: a name swapped for one since lstat() loses the link only.
			if ( @unlink( $path ) ) { // phpcs:ignore WordPress.PHP.NoSilencedErrors
				$out['deleted'][] = array(
					'name'       => $name,
					'plugin'     => $archives[ $name ]['plugin'],
					'version'    => $archives[ $name ]['version'],
					'created_at' => gmdate( 'c', $archives[ $name ]['time'] ),
					'size'       => (int) $st['size'],
				);
			} else {
				$error           = error_get_last();
				$out['errors'][] = "cannot delete $name" . ( $error ? ': ' . $error['message'] : '' );
			}
		}
		if ( $out['deleted'] ) {
			Molam_Form_Store::fsync_dir( $dir );
		}
		$out['left'] = max( 0, count( $doomed ) - self::DELETE_PER_RUN );
		$out['kept'] = count( $archives ) - count( $out['deleted'] );
		return $out;
	}

	/**
	 * Regular files of `$dir` named like archives, at most `SCAN_PER_RUN` entries read.
	 *
	 * @param string $dir Backups folder.
	 * @return array<string, array{plugin:string, version:string, time:int, id:string}>|null Null when unreadable.
	 */
	private static function list_archives( $dir ) {
		$dh = @opendir( $dir ); // phpcs:ignore WordPress.PHP.NoSilencedErrors
		if ( false === $dh ) {
			return null;
		}
		$plugin = (string) Molam_Form_Settings::get( 'plugin_name' );
		$utc    = new DateTimeZone( 'UTC' );
		$found  = array();
		for ( $read = 0; $read < self::SCAN_PER_RUN; $read++ ) {
			$name = readdir( $dh );
			if ( false === $name ) {
				break;
			}
			// The configured name may hold dashes: read it as one name, as the upgrade wrote it.
			$own = '' !== $plugin && 0 === strpos( $name, "$plugin-" ) && preg_match( self::ARCHIVE_TAIL, substr( $name, strlen( $plugin ) + 1 ), $m );
			if ( $own ) {
				$m['plugin'] = $plugin;
			} elseif ( ! preg_match( self::ARCHIVE_PATTERN, $name, $m ) ) {
				continue;
			}
			$time = DateTime::createFromFormat( '!Ymd\THis\Z', $m['stamp'], $utc );
			if ( false === $time || $time->format( 'Ymd\THis\Z' ) !== $m['stamp'] ) {
				continue; // Not a real time (month 13…): not ours to judge, kept.
			}
			$st = @lstat( "$dir/$name" ); // phpcs:ignore WordPress.PHP.NoSilencedErrors -- it may vanish meanwhile.
			if ( false === $st || 0100000 !== ( $st['mode'] & 0170000 ) ) {
				continue; // Symlinks and folders are never archives: not counted, not deleted.
			}
			$found[ $name ] = array(
				'plugin'  => $m['plugin'],
				'version' => $m['version'],
				'time'    => $time->getTimestamp(),
				'id'      => $m['id'],
			);
		}
		closedir( $dh );
		return $found;
	}

	/**
	 * Archives still needed whatever their age: named by a queued report or belonging to one
	 * (by transaction id), and the archive of the version kept for an instant rollback.
	 *
	 * @param array $pending The outbox queue.
	 * @return array{names:array<string, true>, ids:array<string, true>}
	 */
	private static function protected_archives( $pending ) {
		$names = array();
		$ids   = array();
		foreach ( $pending as $entry ) {
			$path = $entry['body']['backup_path'] ?? null;
			if ( is_string( $path ) && '' !== $path ) {
				$names[ basename( $path ) ] = true;
			}
			// Keys of an operation's reports are `<tx>-backup`, `<tx>-upgrade`, `<tx>-complete`…
			if ( preg_match( '/^([0-9a-f]+)-/', (string) ( $entry['key'] ?? '' ), $m ) ) {
				$ids[ $m[1] ] = true;
			}
		}
		$current = Molam_Form_Store::load( 'current.json', array() );
		$gen     = is_array( $current ) ? ( $current['generation'] ?? null ) : null;
		if ( is_array( $gen ) && ! empty( $current['txid'] ) ) {
			// The upgrade that installed this version archived the one before it under its txid.
			$ids[ (string) $current['txid'] ] = true;
		}
		return array(
			'names' => $names,
			'ids'   => $ids,
		);
	}
}
