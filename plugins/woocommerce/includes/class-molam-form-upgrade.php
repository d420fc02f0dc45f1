<?php
/**
 * The safe upgrade: backup, verify, apply, smoke-test, commit or roll back.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * The seed's `Molam_Form_Upgrade` (115bis), following `docs/agent.md` step for step: the same
 * journal, maintenance flag, release rules, migration policy, reports and idempotency keys as
 * `molam-agent`, with what PHP on shared hosting has (no threads, no renameat2, no fork).
 */
class Molam_Form_Upgrade {

	const HOLD_S = 86400;

	/**
	 * The result array (keys fixed by the seed and the agent's `--json`).
	 *
	 * @param string      $status        success | failed | skipped.
	 * @param string|null $from          From version.
	 * @param string|null $to            To version.
	 * @param array       $extra         rollback_status, reason, error, files_restored, … .
	 * @return array<string, mixed>
	 */
	public static function result( $status, $from, $to, $extra = array() ) {
		return array_merge(
			array(
				'status'               => $status,
				'from_version'         => $from,
				'to_version'           => $to,
				'rollback_status'      => 'not_required',
				'reason'               => null,
				'error'                => null,
				'files_restored'       => 0,
				'db_restored'          => false,
				'duration_ms'          => 0,
				'rollback_duration_ms' => null,
			),
			$extra
		);
	}

	/**
	 * Milliseconds since `$start` (microtime).
	 *
	 * @param float $start Start.
	 * @return int
	 */
	private static function ms( $start ) {
		return (int) round( ( microtime( true ) - $start ) * 1000 );
	}

	/**
	 * Version of the managed plugin installed right now (its WordPress header).
	 *
	 * @return string|null
	 */
	public static function installed_version() {
		return Molam_Form_Release::header_version( Molam_Form_Settings::plugin_dir() . '/' . Molam_Form_Settings::plugin_file() );
	}

	/**
	 * Queue one report through the outbox.
	 *
	 * @param string      $path       API path.
	 * @param array       $body       Body.
	 * @param string      $key        Idempotency key.
	 * @param string      $method     Method.
	 * @param string|null $depends_on Key it depends on.
	 * @return string
	 */
	private static function report( $path, $body, $key, $method = 'POST', $depends_on = null ) {
		return Molam_Form_Outbox::enqueue( $method, $path, $body, $key, $depends_on );
	}

	/**
	 * WP-cron entry point: one run on the installed version.
	 *
	 * @param bool $force Upgrade even when the rollout does not select this merchant.
	 * @return array
	 */
	public static function run( $force = false ) {
		return self::safe_upgrade( (string) self::installed_version(), $force );
	}

	/**
	 * The seed's entry point: recover, send queued reports, perform pending operator-forced
	 * rollbacks, then ask the control plane and upgrade when this merchant is selected.
	 *
	 * @param string $current_version The version the caller believes is installed.
	 * @param bool   $force_upgrade   Upgrade even outside the rollout's cohort (still needs a verifiable release).
	 * @return array{status:string, from_version:?string, to_version:?string, rollback_status:string, error:?string}
	 */
	public static function safe_upgrade( $current_version, $force_upgrade = false ) {
		$start = microtime( true );
		self::prepare_process();
		try {
			return Molam_Form_Store::with_lock(
				fn() => self::locked_upgrade( $current_version, $force_upgrade, $start ),
				self::result( 'skipped', $current_version, null, array( 'reason' => 'another upgrade run is in progress for this plugin' ) )
			);
		} catch ( Throwable $e ) {
			// Nothing reaches the page: a configuration or environment problem (a work folder
			// that cannot be created, so no lock either) is a result.
			return self::result( 'failed', $current_version, null, array( 'error' => $e->getMessage(), 'duration_ms' => self::ms( $start ) ) );
		}
	}

	/**
	 * A run must not stop halfway because the visitor whose page load started WP-cron went
	 * away, or at the web request's time limit, or at the front end's 40 MB memory limit.
	 * (A stop is recovered like a crash anyway; this keeps it from being the normal case.)
	 */
	private static function prepare_process() {
		ignore_user_abort( true );
		if ( function_exists( 'set_time_limit' ) ) {
			@set_time_limit( 300 ); // phpcs:ignore WordPress.PHP.NoSilencedErrors -- disabled on some hosts.
		}
		wp_raise_memory_limit( 'admin' );
	}

	/**
	 * The run, under the lock.
	 *
	 * @param string $current_version Caller's version.
	 * @param bool   $force           Force.
	 * @param float  $start           Start time.
	 * @return array
	 */
	private static function locked_upgrade( $current_version, $force, $start ) {
		$recovered = self::recover();
		if ( $recovered && 'failed' === $recovered['rollback_status'] ) {
			return $recovered;
		}
		$extra = $recovered ? array( 'recovered' => $recovered ) : array();
		Molam_Form_Outbox::flush();
		$from = self::installed_version();
		if ( null === $from ) {
			return self::result( 'failed', $current_version, null, array( 'error' => 'the managed plugin ' . Molam_Form_Settings::plugin_dir() . ' has no readable Version header' ) );
		}
		if ( ! $recovered && '' !== (string) $current_version && 0 !== version_compare( $current_version, $from ) ) {
			return self::result( 'skipped', $current_version, null, array( 'reason' => "the caller says $current_version is installed, the plugin header says $from: nothing done" ) );
		}
		$forced = self::forced_rollbacks( $from );
		if ( $forced ) {
			$last                     = end( $forced );
			$last['forced_rollbacks'] = $forced;
			$last['reason']           = 'operator-forced rollback handled; no upgrade in this run';
			Molam_Form_Outbox::flush();
			return array_merge( $last, $extra );
		}
		$decision = Molam_Form_Rollout::should_upgrade( Molam_Form_Settings::get( 'merchant_id' ), Molam_Form_Settings::get( 'plugin_name' ), $from );
		if ( isset( $decision['error_status'] ) && in_array( $decision['error_status'], array( 0, 401, 403 ), true ) ) {
			return self::result( 'failed', $from, null, array_merge( $extra, array( 'error' => $decision['reason'], 'duration_ms' => self::ms( $start ) ) ) );
		}
		$release = self::pick_release( $decision, $force );
		$to      = $release ? $release['version'] : $decision['version'];
		if ( ! $decision['should_upgrade'] && ! $force ) {
			return self::result( 'skipped', $from, $to, array_merge( $extra, array( 'reason' => $decision['reason'] ? $decision['reason'] : 'no upgrade offered', 'duration_ms' => self::ms( $start ) ) ) );
		}
		if ( null === $release ) {
			return self::result( 'skipped', $from, $to, array_merge( $extra, array( 'reason' => 'no release available for this plugin', 'duration_ms' => self::ms( $start ) ) ) );
		}
		if ( version_compare( $release['version'], $from, '<' ) ) {
			return self::result( 'failed', $from, $release['version'], array_merge( $extra, array( 'error' => "refusing to downgrade $from -> {$release['version']}" ) ) );
		}
		if ( 0 === version_compare( $release['version'], $from ) && ! $force ) {
			return self::result( 'skipped', $from, $release['version'], array_merge( $extra, array( 'reason' => "already on version $from" ) ) );
		}
		$held = self::held( $release['version'], $release['sha256'] );
		if ( $held && ! $force ) {
			return self::result( 'skipped', $from, $release['version'], array_merge( $extra, array( 'reason' => "version {$release['version']} on hold after a rollback ($held)" ) ) );
		}
		$out = self::upgrade( $release, $from, $start );
		Molam_Form_Outbox::flush();
		return array_merge( $out, $extra );
	}

	/**
	 * The release to install: the decision's, or (forced) the newest registered one.
	 *
	 * @param array $decision Decision.
	 * @param bool  $force    Force.
	 * @return array|null {version, download_url, sha256, signature}
	 */
	private static function pick_release( $decision, $force ) {
		$rel     = $decision['release'];
		$version = $decision['version'];
		if ( ! $rel && $force ) {
			try {
				$answer = Molam_Form_Http::request( 'GET', 'releases', null, array( 'plugin_name' => Molam_Form_Settings::get( 'plugin_name' ) ) );
				$list   = $answer['releases'] ?? ( $answer['results'] ?? array() );
			} catch ( Molam_Form_Http_Error $e ) {
				$list = array();
			}
			$list = array_values( array_filter( (array) $list, fn( $r ) => ! empty( $r['version'] ) && ! empty( $r['download_url'] ) ) );
			usort( $list, fn( $a, $b ) => version_compare( $b['version'], $a['version'] ) );
			$match = array_values( array_filter( $list, fn( $r ) => $r['version'] === $version ) );
			$rel   = $match[0] ?? ( $list[0] ?? null );
			if ( $rel ) {
				$version = $rel['version'];
			}
		}
		if ( ! $rel || empty( $rel['download_url'] ) ) {
			return null;
		}
		return array(
			'version'      => (string) ( $version ? $version : ( $rel['version'] ?? '' ) ),
			'download_url' => (string) $rel['download_url'],
			'sha256'       => (string) ( $rel['sha256'] ?? '' ),
			'signature'    => $rel['signature'] ?? null,
		);
	}

	/**
	 * Why `$version` is on hold after a rollback, or null.
	 *
	 * @param string      $version Version.
	 * @param string|null $sha256  Package checksum (a re-published package deserves a try).
	 * @return string|null
	 */
	private static function held( $version, $sha256 ) {
		$hold = Molam_Form_Store::load( 'holds.json', array() )[ $version ] ?? null;
		if ( ! $hold || $hold['until'] < time() ) {
			return null;
		}
		if ( ! empty( $hold['sha256'] ) && $sha256 && $hold['sha256'] !== $sha256 ) {
			return null;
		}
		return $hold['reason'];
	}

	/**
	 * Do not retry `$version` automatically for a day.
	 *
	 * @param string      $version Version.
	 * @param string|null $sha256  Package checksum.
	 * @param string      $reason  Why.
	 */
	private static function hold( $version, $sha256, $reason ) {
		$holds             = array_filter( Molam_Form_Store::load( 'holds.json', array() ), fn( $h ) => $h['until'] > time() );
		$holds[ $version ] = array(
			'until'  => time() + self::HOLD_S,
			'sha256' => $sha256,
			'reason' => $reason,
		);
		Molam_Form_Store::store( 'holds.json', $holds );
	}

	/**
	 * Refuse a plugin directory whose swap cannot be two atomic renames.
	 *
	 * @throws RuntimeException When the plugin directory is a symlink or a mount point.
	 */
	private static function preflight() {
		$dir = Molam_Form_Settings::plugin_dir();
		if ( is_link( $dir ) || ! is_dir( $dir ) ) {
			throw new RuntimeException( "$dir is not a plain directory" );
		}
		if ( stat( $dir )['dev'] !== stat( dirname( $dir ) )['dev'] ) {
			throw new RuntimeException( "$dir is a mount point: it cannot be renamed" );
		}
	}

	/**
	 * Refuse to pause checkout behind a long transaction on this site's database (a
	 * `mysqldump --single-transaction`, a stuck request): DDL would wait for its metadata lock
	 * while checkout stays paused. Needs the PROCESS privilege; without it, the bounded lock
	 * waits of the migrations are the only guard.
	 *
	 * @throws RuntimeException When such a transaction is open.
	 */
	private static function preflight_database() {
		global $wpdb;
		$suppress = $wpdb->suppress_errors( true );
		$old      = $wpdb->get_var( 'SELECT MAX(TIMESTAMPDIFF(SECOND, t.trx_started, NOW())) FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id WHERE p.DB = DATABASE() AND p.ID <> CONNECTION_ID()' );
		$wpdb->suppress_errors( $suppress );
		if ( null !== $old && (int) $old > 10 ) {
			throw new RuntimeException( "a database transaction has been open for {$old}s; not pausing checkout behind it" );
		}
	}

	/**
	 * Steps 4 to 12 of docs/agent.md; any failure after staging rolls back.
	 *
	 * @param array  $release Release.
	 * @param string $from    Installed version.
	 * @param float  $start   Start time.
	 * @return array
	 */
	private static function upgrade( $release, $from, $start ) {
		$work = Molam_Form_Store::prepare();
		$tx   = bin2hex( random_bytes( 6 ) );
		$to   = $release['version'];
		$j    = array(
			'txid'           => $tx,
			'attempt'        => 0,
			'op'             => 'upgrade',
			'trigger'        => 'automatic',
			'plugin'         => Molam_Form_Settings::get( 'plugin_name' ),
			'from_version'   => $from,
			'to_version'     => $to,
			'release_sha256' => $release['sha256'],
			'started_at'     => microtime( true ),
			'paths'          => array(
				'staging'  => "$work/staging-$tx",
				'download' => "$work/download-$tx.zip",
				'aside'    => "$work/prev-$from-$tx",
				'trash'    => "$work/failed-$to-$tx",
			),
		);
		Molam_Form_Store::$journal = array();
		Molam_Form_Store::step( 'prepared', $j );
		try {
			self::preflight();
			self::backup( $tx, $from );
			Molam_Form_Store::step( 'backed_up' );
			$pkg = $j['paths']['download'];
			$max = (int) Molam_Form_Settings::get( 'max_download_mb' ) << 20;
			Molam_Form_Release::verify_checksum( Molam_Form_Release::download( $release['download_url'], $pkg, $max ), $release['sha256'] );
			if ( empty( Molam_Form_Settings::get( 'allow_unsigned' ) ) ) {
				Molam_Form_Release::verify_signature( $pkg, $release['signature'], (string) Molam_Form_Settings::get( 'public_key' ) );
			}
			Molam_Form_Store::step( 'downloaded' );
			$migrations = self::stage( $pkg, $j['paths']['staging'], $to );
			if ( $migrations ) {
				self::preflight_database();
			}
			Molam_Form_Store::step(
				'staged',
				array(
					'migrations'  => $migrations,
					'files_count' => Molam_Form_Store::count_files( Molam_Form_Settings::plugin_dir() ),
				)
			);
		} catch ( Throwable $e ) {
			$out                = self::abandon( Molam_Form_Store::$journal, $e->getMessage() );
			$out['duration_ms'] = self::ms( $start );
			return $out;
		}
		try {
			Molam_Form_Store::maintenance_on( $from, $to );
			Molam_Form_Store::step( 'maintenance_on' );
			self::save_options( $tx );
			self::swap();
			self::migrate( $to );
			self::verify( $to );
			Molam_Form_Store::step( 'verified' );
		} catch ( Throwable $e ) {
			$failed             = microtime( true );
			$j                  = Molam_Form_Store::$journal;
			$j['error']         = $e->getMessage();
			$out                = self::run_rollback( $j, $failed );
			$out['duration_ms'] = self::ms( $start );
			return $out;
		}
		return self::finish_commit( Molam_Form_Store::$journal, $start );
	}

	/**
	 * Encrypted archive of the plugin directory and its rows, reported to the control plane.
	 *
	 * @param string $tx   Transaction id.
	 * @param string $from Installed version.
	 */
	private static function backup( $tx, $from ) {
		$plugin  = Molam_Form_Settings::get( 'plugin_name' );
		$archive = Molam_Form_Settings::work_dir() . '/backups/' . sprintf( '%s-%s-%s-%s.mab', $plugin, $from, gmdate( 'Ymd\THis\Z' ), $tx );
		Molam_Form_Store::save( array( 'archive' => $archive ) );
		$key = self::report(
			'backup',
			array(
				'version'          => $from,
				'backup_path'      => $archive,
				'db_snapshot_name' => null,
				'backup_status'    => 'pending',
			),
			"$tx-backup"
		);
		try {
			list( $size, $sha ) = Molam_Form_Backup::create( $archive, $plugin, $from, Molam_Form_Settings::plugin_dir(), Molam_Form_Settings::present_tables(), (string) Molam_Form_Settings::get( 'option_prefix' ) );
		} catch ( Throwable $e ) {
			self::report( 'backup/{backup_id}', array( 'backup_status' => 'failed' ), "$tx-backup-done", 'PATCH', $key );
			throw $e;
		}
		self::report(
			'backup/{backup_id}',
			array(
				'backup_status'     => 'completed',
				'backup_size_bytes' => $size,
				'sha256'            => $sha,
			),
			"$tx-backup-done",
			'PATCH',
			$key
		);
	}

	/**
	 * Unpack into staging, check the version, classify the migrations (policy decided here,
	 * before the pause).
	 *
	 * @param string $pkg     Package.
	 * @param string $staging Staging directory.
	 * @param string $version Expected version.
	 * @return array [[name, sha256, class, sql, down_sql|null], …]
	 * @throws Molam_Form_Verification_Error|Molam_Form_Migration_Error When the release is refused.
	 */
	private static function stage( $pkg, $staging, $version ) {
		global $wpdb;
		Molam_Form_Release::extract( $pkg, $staging, (int) Molam_Form_Settings::get( 'max_unpacked_mb' ) << 20 );
		$staged = Molam_Form_Release::header_version( $staging . '/' . Molam_Form_Settings::plugin_file() );
		if ( null === $staged || 0 !== version_compare( $staged, $version ) ) {
			throw new Molam_Form_Verification_Error( 'release package contains version ' . ( $staged ?? 'none' ) . ", expected $version" );
		}
		$tables = Molam_Form_Settings::tables();
		$files  = glob( "$staging/migrations/*.sql" );
		sort( $files, SORT_STRING );
		$out = array();
		foreach ( $files as $path ) {
			$name = basename( $path );
			$sql  = (string) file_get_contents( $path );
			list( $class, $why ) = Molam_Form_Migrations::classify( Molam_Form_Migrations::expand_prefix( $sql ), $tables, $wpdb->options );
			if ( Molam_Form_Migrations::REFUSED === $class ) {
				throw new Molam_Form_Migration_Error( "migration $name refused: $why" );
			}
			$down_path = "$staging/migrations/down/$name";
			$down      = is_file( $down_path ) ? (string) file_get_contents( $down_path ) : null;
			if ( Molam_Form_Migrations::CONTRACT === $class && null === $down ) {
				throw new Molam_Form_Migration_Error( "migration $name is a contract migration ($why) and the release ships no migrations/down/$name" );
			}
			if ( null !== $down && Molam_Form_Migrations::REFUSED === Molam_Form_Migrations::classify( Molam_Form_Migrations::expand_prefix( $down ), $tables, $wpdb->options )[0] ) {
				throw new Molam_Form_Migration_Error( "reverse migration down/$name names tables outside the plugin's" );
			}
			$out[] = array( $name, hash( 'sha256', $sql ), $class, $sql, $down );
		}
		return $out;
	}

	/**
	 * Keep the plugin's option rows aside (in an option of their own: they already live in the
	 * database, no plaintext copy reaches the disk).
	 *
	 * @param string $tx Transaction id.
	 */
	private static function save_options( $tx ) {
		global $wpdb;
		$prefix = (string) Molam_Form_Settings::get( 'option_prefix' );
		$rows   = '' === $prefix ? array() : $wpdb->get_results( $wpdb->prepare( "SELECT option_name, option_value, autoload FROM {$wpdb->options} WHERE option_name LIKE %s", $wpdb->esc_like( $prefix ) . '%' ), ARRAY_A );
		$name   = "molam_form_optsnap_$tx";
		update_option( $name, array( 'prefix' => $prefix, 'rows' => (array) $rows ), false );
		Molam_Form_Store::step( 'options_saved', array( 'optsnap' => $name ) );
	}

	/**
	 * Two renames: the old tree aside, the new one in place, each journaled first. Both trees
	 * are identified by inode, so recovery finds them wherever a crash left them.
	 */
	private static function swap() {
		$j       = Molam_Form_Store::$journal;
		$live    = Molam_Form_Settings::plugin_dir();
		$staging = $j['paths']['staging'];
		$aside   = $j['paths']['aside'];
		Molam_Form_Store::step(
			'swap_started',
			array(
				'files' => array(
					'live'         => $live,
					'target_inode' => Molam_Form_Store::inode( $live ),
					'other_inode'  => Molam_Form_Store::inode( $staging ),
					'candidates'   => array( $staging, $aside ),
					'trash'        => $j['paths']['trash'],
				),
			)
		);
		Molam_Form_Store::move( $live, $aside );
		Molam_Form_Store::step( 'aside' );
		Molam_Form_Store::move( $staging, $live );
		self::forget_plugin_cache();
		Molam_Form_Store::step( 'swapped' );
	}

	/**
	 * PHP's opcache and stat cache must not serve the old tree's files.
	 */
	private static function forget_plugin_cache() {
		clearstatcache( true );
		if ( function_exists( 'opcache_reset' ) ) {
			opcache_reset();
		}
		// wp_clean_plugins_cache() lives in wp-admin/includes, absent under WP-cron.
		wp_cache_delete( 'plugins', 'plugins' );
	}

	/**
	 * Run the release's migrations, with the content re-checked against staging.
	 *
	 * @param string $version Version.
	 */
	private static function migrate( $version ) {
		$j = Molam_Form_Store::$journal;
		if ( empty( $j['migrations'] ) ) {
			Molam_Form_Store::step( 'migrations_done', array( 'applied_migrations' => array() ) );
			return;
		}
		Molam_Form_Store::step( 'migrations_started' );
		$live = Molam_Form_Settings::plugin_dir();
		foreach ( $j['migrations'] as $m ) {
			if ( ! is_file( "$live/migrations/{$m[0]}" ) || hash_file( 'sha256', "$live/migrations/{$m[0]}" ) !== $m[1] ) {
				throw new Molam_Form_Migration_Error( "migration {$m[0]} changed after staging" );
			}
		}
		$applied = Molam_Form_Migrations::apply( Molam_Form_Settings::get( 'plugin_name' ), $version, $j['migrations'], array( __CLASS__, 'migration_progress' ) );
		Molam_Form_Store::step( 'migrations_done', array( 'applied_migrations' => $applied ) );
	}

	/**
	 * Journal the file about to run (the rollback reverts only files that may have started).
	 *
	 * @param string $name File.
	 * @param bool   $done Whether it just finished.
	 */
	public static function migration_progress( $name, $done ) {
		if ( ! $done ) {
			$started   = Molam_Form_Store::$journal['migrations_begun'] ?? array();
			$started[] = $name;
			Molam_Form_Store::save( array( 'migrations_begun' => $started ) );
		}
		Molam_Form_Store::fault( ( $done ? 'migration-applied:' : 'migration-begun:' ) . $name );
	}

	/**
	 * The installed version must be the target; then the smoke test must pass.
	 *
	 * @param string $version Version.
	 * @throws RuntimeException When it does not.
	 */
	private static function verify( $version ) {
		$installed = self::installed_version();
		if ( null === $installed || 0 !== version_compare( $installed, $version ) ) {
			throw new RuntimeException( 'installed version is ' . ( $installed ?? 'unreadable' ) . " after the swap, expected $version" );
		}
		$smoke = self::smoke_test();
		if ( true !== $smoke ) {
			throw new RuntimeException( "smoke test failed: $smoke" );
		}
	}

	/**
	 * The seed's check: does the payment path work with the plugin as installed now?
	 *
	 * @return bool
	 */
	public static function test_payment_processing() {
		return true === self::smoke_test();
	}

	/**
	 * URL of the health check (`?molam-health=1` on this site unless configured).
	 *
	 * @return string
	 */
	public static function smoke_url() {
		$url = (string) Molam_Form_Settings::get( 'smoke_url' );
		return '' !== $url ? $url : add_query_arg( 'molam-health', '1', home_url( '/' ) );
	}

	/**
	 * A loopback request to the health URL, answered by a fresh PHP process that loads the
	 * code now on disk: healthy only on a 2xx whose JSON says ok. A 403, a redirect, a refused
	 * connection or a timeout is a failure (unlike WordPress core's loopback check).
	 *
	 * @return true|string True, or what failed.
	 */
	public static function smoke_test() {
		$args = array(
			'timeout'     => (float) Molam_Form_Settings::get( 'timeout_s' ),
			'redirection' => 0,
			'headers'     => array( 'Cache-Control' => 'no-cache' ),
			'user-agent'  => 'molam-form smoke test',
		);
		// First ask the server to drop the plugin's files from its opcode cache: PHP-FPM
		// revalidates only every `revalidate_freq` seconds (or never), and the smoke test must
		// run the code now on disk. The one-time token keeps strangers from flushing it.
		$token = bin2hex( random_bytes( 16 ) );
		update_option( 'molam_form_flush_token', $token, false );
		wp_remote_get( add_query_arg( 'molam-flush', $token, self::smoke_url() ), $args );
		delete_option( 'molam_form_flush_token' );
		$response = wp_remote_get( self::smoke_url(), $args );
		if ( is_wp_error( $response ) ) {
			return 'health URL unreachable: ' . $response->get_error_message();
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		if ( $status < 200 || $status >= 300 ) {
			return "health URL answered HTTP $status";
		}
		$body = json_decode( (string) wp_remote_retrieve_body( $response ), true );
		if ( ! is_array( $body ) || empty( $body['ok'] ) ) {
			return 'health URL answered 2xx without {"ok": true}';
		}
		return true;
	}

	/**
	 * Drop every PHP file of the managed plugin from this server's opcode cache (the next
	 * request compiles what is on disk). Called by the health endpoint with a valid token.
	 *
	 * @return int Files invalidated.
	 */
	public static function flush_code_cache() {
		if ( ! function_exists( 'opcache_invalidate' ) || ! is_dir( Molam_Form_Settings::plugin_dir() ) ) {
			return 0;
		}
		$n  = 0;
		$it = new RecursiveIteratorIterator( new RecursiveDirectoryIterator( Molam_Form_Settings::plugin_dir(), FilesystemIterator::SKIP_DOTS ) );
		foreach ( $it as $file ) {
			if ( 'php' === $file->getExtension() ) {
				$n += @opcache_invalidate( $file->getPathname(), true ) ? 1 : 0; // phpcs:ignore WordPress.PHP.NoSilencedErrors -- restrict_api warns.
			}
		}
		return $n;
	}

	/**
	 * What the health endpoint checks, in the process serving it: the gateway loads, its
	 * settings are readable, the tables answer.
	 *
	 * @return array{ok:bool, checks:array<string, bool|string>, version:?string}
	 */
	public static function health_report() {
		global $wpdb;
		$checks = array();
		$class  = (string) Molam_Form_Settings::get( 'gateway_class' );
		$checks['gateway_loaded'] = class_exists( $class );
		if ( $checks['gateway_loaded'] && method_exists( $class, 'self_test' ) ) {
			try {
				$checks['gateway_self_test'] = true === call_user_func( array( $class, 'self_test' ) );
			} catch ( Throwable $e ) {
				$checks['gateway_self_test'] = $e->getMessage();
			}
		}
		$prefix                      = (string) Molam_Form_Settings::get( 'option_prefix' );
		$checks['settings_readable'] = '' === $prefix || is_array( get_option( $prefix . 'settings' ) );
		$exact = array_filter( Molam_Form_Settings::tables(), fn( $t ) => '*' !== substr( $t, -1 ) );
		foreach ( array_unique( array_merge( $exact, Molam_Form_Settings::present_tables() ) ) as $table ) {
			$suppress = $wpdb->suppress_errors( true );
			$ok       = false !== $wpdb->query( "SELECT 1 FROM `$table` LIMIT 1" ); // phpcs:ignore WordPress.DB
			$wpdb->suppress_errors( $suppress );
			$checks[ "table:$table" ] = $ok;
		}
		return array(
			'ok'      => ! in_array( false, array_map( fn( $v ) => true === $v, $checks ), true ),
			'checks'  => $checks,
			'version' => self::installed_version(),
		);
	}

	/**
	 * Make the new version permanent (idempotent: recovery may run it again).
	 *
	 * @param array $j     Journal.
	 * @param float $start Start.
	 * @return array
	 */
	private static function finish_commit( $j, $start ) {
		if ( 'committed' !== ( $j['step'] ?? '' ) ) {
			Molam_Form_Store::step( 'committed' );
			$j = Molam_Form_Store::$journal;
		}
		$tx      = $j['txid'];
		$current = Molam_Form_Store::load( 'current.json', array() );
		if ( ( $current['txid'] ?? null ) !== $tx ) {
			$old = $current['generation'] ?? null;
			Molam_Form_Store::store(
				'current.json',
				array(
					'version'      => $j['to_version'],
					'txid'         => $tx,
					'committed_at' => microtime( true ),
					// Only the immediately previous version is kept ready for a rollback.
					'generation'   => array(
						'txid'       => $tx,
						'version'    => $j['from_version'],
						'dir'        => $j['paths']['aside'],
						'inode'      => $j['files']['target_inode'] ?? null,
						'migrations' => array_map( fn( $m ) => array( $m[0], $m[1], $m[2], '', $m[4] ), $j['migrations'] ?? array() ),
						'optsnap'    => $j['optsnap'] ?? null,
					),
				)
			);
			if ( $old ) {
				self::delete_generation( $old );
			}
		}
		Molam_Form_Store::maintenance_off();
		self::cleanup( $j, array( 'download', 'staging', 'trash' ) );
		self::report(
			'upgrades',
			array(
				'from_version' => $j['from_version'],
				'to_version'   => $j['to_version'],
				'status'       => 'success',
				'duration_ms'  => self::ms( $start ),
			),
			"$tx-upgrade"
		);
		Molam_Form_Store::journal_clear();
		Molam_Form_Outbox::flush();
		return self::result( 'success', $j['from_version'], $j['to_version'], array( 'reason' => 'upgrade verified and committed', 'duration_ms' => self::ms( $start ) ) );
	}

	/**
	 * Delete a kept previous version (directory, option snapshot).
	 *
	 * @param array $gen Generation.
	 */
	private static function delete_generation( $gen ) {
		if ( ! empty( $gen['dir'] ) && Molam_Form_Store::inode( $gen['dir'] ) === $gen['inode'] ) {
			Molam_Form_Store::remove_tree( $gen['dir'] );
		}
		if ( ! empty( $gen['optsnap'] ) ) {
			delete_option( $gen['optsnap'] );
		}
	}

	/**
	 * Delete the operation's scratch paths, never the live tree.
	 *
	 * @param array    $j    Journal.
	 * @param string[] $keys Path keys.
	 */
	private static function cleanup( $j, $keys ) {
		$live = Molam_Form_Store::inode( Molam_Form_Settings::plugin_dir() );
		foreach ( $keys as $key ) {
			$path = $j['paths'][ $key ] ?? null;
			if ( $path && null !== Molam_Form_Store::inode( $path ) && Molam_Form_Store::inode( $path ) !== $live ) {
				Molam_Form_Store::remove_tree( $path );
			}
		}
	}

	/**
	 * End an upgrade that never touched the live plugin: clean up, report the failure.
	 *
	 * @param array  $j     Journal.
	 * @param string $error Why.
	 * @return array
	 */
	private static function abandon( $j, $error ) {
		self::cleanup( $j, array( 'download', 'staging', 'trash' ) );
		$tx = $j['txid'];
		if ( ! empty( $j['archive'] ) && ! is_file( $j['archive'] ) ) {
			$part = dirname( $j['archive'] ) . '/.' . basename( $j['archive'] ) . '.part';
			if ( is_file( $part ) ) {
				unlink( $part );
			}
			if ( null !== Molam_Form_Outbox::result( "$tx-backup" ) || in_array( "$tx-backup", array_column( Molam_Form_Outbox::pending(), 'key' ), true ) ) {
				self::report( 'backup/{backup_id}', array( 'backup_status' => 'failed' ), "$tx-backup-done", 'PATCH', "$tx-backup" );
			}
		}
		Molam_Form_Store::maintenance_off();
		self::report(
			'upgrades',
			array(
				'from_version' => $j['from_version'],
				'to_version'   => $j['to_version'],
				'status'       => 'failed',
				'error'        => $error,
			),
			"$tx-upgrade"
		);
		Molam_Form_Store::journal_clear();
		Molam_Form_Outbox::flush();
		return self::result( 'failed', $j['from_version'], $j['to_version'], array( 'error' => $error ) );
	}

	/**
	 * Finish or undo an operation a crash interrupted; null when there was none. The caller
	 * holds the lock.
	 *
	 * @return array|null
	 */
	public static function recover() {
		$j = Molam_Form_Store::journal_load();
		if ( ! $j ) {
			return null;
		}
		$step = $j['step'] ?? '';
		if ( 'committed' === $step ) {
			return self::finish_commit( $j, microtime( true ) );
		}
		if ( in_array( $step, Molam_Form_Store::LIVE_UNTOUCHED, true ) ) {
			return self::abandon( $j, "interrupted at step '$step' before any change to the live plugin" );
		}
		if ( 'rolled_back' === $step ) {
			return self::finish_rollback( $j );
		}
		if ( in_array( $step, Molam_Form_Store::ROLLBACK_STEPS, true ) || 'rollback_failed' === $step ) {
			$j['error'] = $j['error'] ?? 'interrupted during rollback';
			return self::run_rollback( $j, microtime( true ) );
		}
		$j['trigger']     = 'automatic';
		$j['interrupted'] = true;
		$j['error']       = "upgrade interrupted at step '$step'";
		return self::run_rollback( $j, microtime( true ) );
	}

	/**
	 * Recovery on a page load after a crash: only when a journal exists and no run holds the lock.
	 */
	public static function recover_if_needed() {
		if ( ! Molam_Form_Store::journal_exists() || ! Molam_Form_Store::lock() ) {
			return;
		}
		self::prepare_process();
		try {
			self::recover();
		} catch ( Throwable $e ) {
			// Never break the page; the next cron run retries and reports.
			unset( $e );
		} finally {
			Molam_Form_Store::unlock();
		}
	}

	/**
	 * Put the previous version back: files by inode, then the database (reverse migrations of
	 * contract files, option rows), then prove checkout works.
	 *
	 * @param array $j          Journal.
	 * @param float $failure_at When the failure was detected.
	 * @return array
	 */
	private static function run_rollback( $j, $failure_at ) {
		Molam_Form_Store::$journal = $j;
		$attempt                   = (int) ( $j['attempt'] ?? 0 ) + ( 'rollback_failed' === ( $j['step'] ?? '' ) ? 1 : 0 );
		$back_to                   = 'upgrade' === $j['op'] ? $j['from_version'] : $j['to_version'];
		try {
			Molam_Form_Store::maintenance_on( $j['from_version'], $j['to_version'] );
		} catch ( Throwable $e ) {
			unset( $e ); // A full disk must not stop the rollback itself.
		}
		Molam_Form_Store::step( 'rollback_started', array( 'attempt' => $attempt ), true );
		try {
			$files = self::restore_files( Molam_Form_Store::$journal );
			Molam_Form_Store::step( 'files_restored', array( 'files_restored' => $files ), true );
			$db = self::restore_db( Molam_Form_Store::$journal );
			Molam_Form_Store::step( 'db_restored', array( 'db_restored' => $db ), true );
		} catch ( Throwable $e ) {
			Molam_Form_Store::$journal['rollback_error']       = $e->getMessage();
			Molam_Form_Store::$journal['rollback_duration_ms'] = self::ms( $failure_at );
			Molam_Form_Store::step( 'rollback_failed', array(), true );
			return self::finish_rollback( Molam_Form_Store::$journal );
		}
		$installed = self::installed_version();
		if ( null === $installed || 0 !== version_compare( $installed, $back_to ) ) {
			Molam_Form_Store::$journal['rollback_error'] = 'installed version is ' . ( $installed ?? 'unreadable' ) . " after rollback, expected $back_to";
		} else {
			$smoke = self::smoke_test();
			Molam_Form_Store::$journal['rollback_error'] = true === $smoke ? null : "smoke test after rollback failed: $smoke";
		}
		Molam_Form_Store::$journal['rollback_duration_ms'] = self::ms( $failure_at );
		Molam_Form_Store::step( 'rolled_back', array(), true );
		return self::finish_rollback( Molam_Form_Store::$journal );
	}

	/**
	 * Make the target tree live again, whatever state a crash left the names in.
	 *
	 * @param array $j Journal.
	 * @return int Files restored.
	 * @throws RuntimeException When the tree to restore is gone.
	 */
	private static function restore_files( $j ) {
		$files = $j['files'] ?? null;
		if ( ! $files ) {
			return 0;
		}
		$live    = $files['live'];
		$target  = $files['target_inode'];
		$current = Molam_Form_Store::inode( $live );
		if ( $current !== $target ) {
			$src = null;
			foreach ( $files['candidates'] as $candidate ) {
				if ( Molam_Form_Store::inode( $candidate ) === $target ) {
					$src = $candidate;
				}
			}
			if ( null === $src ) {
				throw new RuntimeException( 'the previous plugin directory is gone (looked in ' . implode( ', ', $files['candidates'] ) . ')' );
			}
			if ( null !== $current ) {
				Molam_Form_Store::move( $live, $files['trash'] );
				Molam_Form_Store::fault( 'restore:between-renames' );
			}
			Molam_Form_Store::move( $src, $live );
			self::forget_plugin_cache();
		}
		return (int) ( $j['files_count'] ?? Molam_Form_Store::count_files( $live ) );
	}

	/**
	 * Reverse migrations of the contract files this operation undoes, then the option rows
	 * (automatic rollbacks only). No table is copied, renamed or dropped: every row the shop
	 * wrote stays.
	 *
	 * @param array $j Journal.
	 * @return bool Whether anything in the database was put back.
	 */
	private static function restore_db( $j ) {
		global $wpdb;
		$restored = false;
		$files    = $j['migrations'] ?? array();
		if ( 'upgrade' === $j['op'] ) {
			// Only files whose application may have started: none before migrations_started.
			$begun = $j['migrations_begun'] ?? array();
			$files = array_values( array_filter( $files, fn( $m ) => in_array( $m[0], $begun, true ) ) );
		}
		if ( $files ) {
			$reverted = Molam_Form_Migrations::revert( Molam_Form_Settings::get( 'plugin_name' ), $files );
			$restored = $restored || (bool) $reverted;
			Molam_Form_Store::save( array( 'reverted_migrations' => $reverted ) );
		}
		$snap = ! empty( $j['optsnap'] ) ? get_option( $j['optsnap'] ) : null;
		if ( is_array( $snap ) && '' !== $snap['prefix'] ) {
			$now = $wpdb->get_results( $wpdb->prepare( "SELECT option_name, option_value, autoload FROM {$wpdb->options} WHERE option_name LIKE %s ORDER BY option_name", $wpdb->esc_like( $snap['prefix'] ) . '%' ), ARRAY_A );
			$old = $snap['rows'];
			usort( $old, fn( $a, $b ) => strcmp( $a['option_name'], $b['option_name'] ) );
			if ( $now === $old ) {
				return $restored;
			}
			// Rows written since the snapshot are kept aside, never discarded (as the agent's
			// `<options>_kept_<tx8>` table): an option row of their own, named in the reports.
			$kept = 'molam_form_optkept_' . $j['txid'];
			update_option( $kept, array( 'prefix' => $snap['prefix'], 'rows' => $now, 'at' => time() ), false );
			Molam_Form_Store::save( array( 'options_kept' => $kept ) );
			$wpdb->query( 'START TRANSACTION' );
			$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name LIKE %s", $wpdb->esc_like( $snap['prefix'] ) . '%' ) );
			foreach ( $snap['rows'] as $row ) {
				$wpdb->insert( $wpdb->options, $row );
			}
			$wpdb->query( 'COMMIT' );
			wp_cache_flush();
			$restored = true;
		}
		return $restored;
	}

	/**
	 * Reports, hold, admin notice, cleanup. Runs after the rollback, never delays it.
	 *
	 * @param array $j Journal.
	 * @return array
	 */
	private static function finish_rollback( $j ) {
		$tx      = $j['txid'];
		$attempt = (int) ( $j['attempt'] ?? 0 );
		$ok      = 'rolled_back' === $j['step'] && empty( $j['rollback_error'] );
		$hard    = 'rollback_failed' === $j['step'];
		$back_to = 'upgrade' === $j['op'] ? $j['from_version'] : $j['to_version'];
		$left    = 'upgrade' === $j['op'] ? $j['to_version'] : $j['from_version'];
		$error   = (string) ( $j['error'] ?? 'rollback requested' );
		$rb_err  = $j['rollback_error'] ?? null;
		if ( ! empty( $j['options_kept'] ) ) {
			$error .= "; option rows written after the snapshot kept in option {$j['options_kept']}";
		}
		$suffix  = $attempt ? "-r$attempt" : '';
		if ( 'upgrade' === $j['op'] && ! $attempt ) {
			self::report(
				'upgrades',
				array(
					'from_version' => $j['from_version'],
					'to_version'   => $j['to_version'],
					'status'       => $ok ? 'rolled_back' : 'failed',
					'error'        => $error . ( $rb_err ? "; rollback: $rb_err" : '' ),
					'duration_ms'  => $j['rollback_duration_ms'] ?? null,
				),
				"$tx-upgrade"
			);
		}
		self::report(
			'rollback',
			array(
				'rollback_version' => $back_to,
				'status'           => $ok ? 'success' : 'failed',
				'reason'           => substr( $error, 0, 1000 ),
			),
			"$tx-rollback-log$suffix"
		);
		$complete = array(
			'success'        => $ok,
			'duration_ms'    => $j['rollback_duration_ms'] ?? null,
			'files_restored' => (int) ( $j['files_restored'] ?? 0 ),
			'db_restored'    => (bool) ( $j['db_restored'] ?? false ),
		);
		if ( $rb_err ) {
			$complete['error_message'] = $rb_err;
		}
		if ( ! empty( $j['rollback_id'] ) ) {
			self::report( "rollback/{$j['rollback_id']}/complete", $complete, "$tx-complete$suffix" );
		} else {
			$init = self::report(
				'rollback/initiate',
				array(
					'from_version' => $left,
					'to_version'   => $back_to,
					'trigger'      => $j['trigger'] ?? 'automatic',
					'reason'       => substr( $error, 0, 1000 ),
				),
				"$tx-initiate$suffix"
			);
			self::report( 'rollback/{rollback_id}/complete', $complete, "$tx-complete$suffix", 'POST', $init );
		}
		if ( empty( $j['interrupted'] ) ) {
			// A crash says nothing about the release: only a real failure puts it on hold.
			self::hold( $left, 'upgrade' === $j['op'] ? ( $j['release_sha256'] ?? null ) : null, 'rolled back (' . ( $j['trigger'] ?? 'automatic' ) . ')' );
		}
		update_option(
			'molam_form_last_rollback',
			array(
				'at'      => time(),
				'from'    => $left,
				'to'      => $back_to,
				'trigger' => $j['trigger'] ?? 'automatic',
				'reason'  => $error,
				'success' => $ok,
				'error'   => $rb_err,
			),
			false
		);
		if ( $hard ) {
			// Files and tables may be mixed: checkout stays paused until someone repairs it.
			Molam_Form_Store::maintenance_on( $j['from_version'], $j['to_version'], true );
		} else {
			Molam_Form_Store::maintenance_off();
			self::cleanup( $j, array( 'download', 'staging', 'trash', 'aside' ) );
			foreach ( array( 'optsnap', 'gen_optsnap' ) as $snap ) {
				if ( ! empty( $j[ $snap ] ) ) {
					delete_option( $j[ $snap ] );
				}
			}
			if ( 'rollback' === $j['op'] ) {
				Molam_Form_Store::store(
					'current.json',
					array(
						'version'      => $back_to,
						'txid'         => $tx,
						'committed_at' => microtime( true ),
						'generation'   => null,
					)
				);
			}
			Molam_Form_Store::journal_clear();
		}
		Molam_Form_Outbox::flush();
		return self::result(
			'upgrade' === $j['op'] ? 'failed' : ( $ok ? 'success' : 'failed' ),
			$j['from_version'],
			$j['to_version'],
			array(
				'rollback_status'      => $ok ? 'success' : 'failed',
				'reason'               => $error,
				'error'                => 'upgrade' === $j['op'] || $rb_err ? trim( ( 'upgrade' === $j['op'] ? $error : '' ) . ( $rb_err ? "; rollback failed: $rb_err" : '' ), '; ' ) : null,
				'files_restored'       => (int) ( $j['files_restored'] ?? 0 ),
				'db_restored'          => (bool) ( $j['db_restored'] ?? false ),
				'rollback_duration_ms' => $j['rollback_duration_ms'] ?? null,
				'trigger'              => $j['trigger'] ?? 'automatic',
				'txid'                 => $tx,
				'options_kept'         => $j['options_kept'] ?? null,
				'reverted_migrations'  => $j['reverted_migrations'] ?? array(),
			)
		);
	}

	/**
	 * Perform (or refuse) the operator-forced rollbacks waiting for this merchant's plugin.
	 * One is performed only when its `from_version` is the installed version and it is younger
	 * than `forced_rollback_max_age_s` (docs/agent.md, Security); a refused one is completed as failed with the reason, so the
	 * operator sees it and it does not stay pending for ever.
	 *
	 * @param string $installed Installed version.
	 * @return array[] Results.
	 */
	private static function forced_rollbacks( $installed ) {
		try {
			$answer = Molam_Form_Http::request(
				'GET',
				'rollback/pending',
				null,
				array(
					'merchant_id' => Molam_Form_Settings::get( 'merchant_id' ),
					'plugin_name' => Molam_Form_Settings::get( 'plugin_name' ),
				)
			);
		} catch ( Molam_Form_Http_Error $e ) {
			return array();
		}
		$results = array();
		foreach ( (array) ( $answer['rollbacks'] ?? array() ) as $item ) {
			$rid = $item['rollback_id'] ?? null;
			$to  = $item['to_version'] ?? null;
			if ( ! $rid || ! $to ) {
				continue;
			}
			$created = strtotime( (string) ( $item['created_at'] ?? '' ) );
			$age     = false === $created ? null : time() - $created;
			$max_age = (int) Molam_Form_Settings::get( 'forced_rollback_max_age_s' );
			$from    = (string) ( $item['from_version'] ?? '' );
			$refusal = null;
			if ( 0 === version_compare( $to, $installed ) ) {
				// Already there: completing it changes nothing.
				self::report(
					"rollback/$rid/complete",
					array(
						'success'        => true,
						'duration_ms'    => 0,
						'files_restored' => 0,
						'db_restored'    => false,
					),
					"forced-$rid-complete"
				);
				$results[] = self::result( 'success', $installed, $to, array( 'rollback_status' => 'success', 'reason' => "already on version $to", 'trigger' => 'operator_forced' ) );
				continue;
			}
			if ( '' === $from || 0 !== version_compare( $from, $installed ) ) {
				$refusal = "forced rollback refused: it was issued for version $from but $installed is installed";
			} elseif ( null === $age || $age > $max_age ) {
				$refusal = null === $age
					? 'forced rollback refused: its creation time is missing or unreadable'
					: sprintf( 'forced rollback refused: issued %.1f h ago, older than forced_rollback_max_age_s (%d s)', $age / 3600, $max_age );
			}
			if ( $refusal ) {
				self::report(
					"rollback/$rid/complete",
					array(
						'success'        => false,
						'duration_ms'    => 0,
						'files_restored' => 0,
						'db_restored'    => false,
						'error_message'  => $refusal,
					),
					"forced-$rid-complete"
				);
				$results[] = self::result( 'failed', $installed, $to, array( 'rollback_status' => 'failed', 'error' => $refusal, 'trigger' => 'operator_forced' ) );
				continue;
			}
			$results[] = self::rollback_to( $to, 'operator_forced', $rid, $item['reason'] ?? null );
			$installed = (string) self::installed_version();
		}
		return $results;
	}

	/**
	 * Restore the kept previous version (trigger manual or operator_forced). The caller holds
	 * the lock. Only the immediately previous version is kept as a live copy; others are in
	 * the encrypted archives, restored by hand.
	 *
	 * @param string      $version     Target version.
	 * @param string      $trigger     manual | operator_forced.
	 * @param string|null $rollback_id The operator's rollback id.
	 * @param string|null $reason      Why.
	 * @return array
	 */
	public static function rollback_to( $version, $trigger = 'manual', $rollback_id = null, $reason = null ) {
		$from = (string) self::installed_version();
		$tx   = bin2hex( random_bytes( 6 ) );
		$gen  = Molam_Form_Store::load( 'current.json', array() )['generation'] ?? null;
		$err  = null;
		if ( 0 === version_compare( $from, $version ) ) {
			$err = "already on version $version";
		} elseif ( ! $gen || $gen['version'] !== $version || Molam_Form_Store::inode( $gen['dir'] ) !== $gen['inode'] ) {
			$err = "no kept copy of version $version on this host (only the version before the last upgrade is kept)";
		}
		if ( $err ) {
			$complete = array(
				'success'        => false,
				'duration_ms'    => 0,
				'files_restored' => 0,
				'db_restored'    => false,
				'error_message'  => "cannot roll back to $version: $err",
			);
			if ( $rollback_id ) {
				self::report( "rollback/$rollback_id/complete", $complete, "$tx-complete" );
			} else {
				$init = self::report(
					'rollback/initiate',
					array(
						'from_version' => $from,
						'to_version'   => $version,
						'trigger'      => $trigger,
						'reason'       => $reason ? $reason : 'manual rollback',
					),
					"$tx-initiate"
				);
				self::report( 'rollback/{rollback_id}/complete', $complete, "$tx-complete", 'POST', $init );
			}
			Molam_Form_Outbox::flush();
			return self::result( 'failed', $from, $version, array( 'rollback_status' => 'failed', 'error' => $complete['error_message'], 'trigger' => $trigger ) );
		}
		$work = Molam_Form_Store::prepare();
		$live = Molam_Form_Settings::plugin_dir();
		$j    = array(
			'txid'         => $tx,
			'attempt'      => 0,
			'op'           => 'rollback',
			'trigger'      => $trigger,
			'rollback_id'  => $rollback_id,
			'plugin'       => Molam_Form_Settings::get( 'plugin_name' ),
			'from_version' => $from,
			'to_version'   => $version,
			'error'        => $reason ? $reason : str_replace( '_', '-', $trigger ) . " rollback to $version",
			'started_at'   => microtime( true ),
			'paths'        => array( 'trash' => "$work/failed-$from-$tx" ),
			'files'        => array(
				'live'         => $live,
				'target_inode' => $gen['inode'],
				'other_inode'  => Molam_Form_Store::inode( $live ),
				'candidates'   => array( $gen['dir'] ),
				'trash'        => "$work/failed-$from-$tx",
			),
			'migrations'   => $gen['migrations'] ?? array(),
			// Option rows stay as they are now (the merchant's settings since the upgrade);
			// the generation's snapshot of them is dropped with the generation.
			'gen_optsnap'  => $gen['optsnap'] ?? null,
			'files_count'  => Molam_Form_Store::count_files( $gen['dir'] ),
		);
		Molam_Form_Store::$journal = array();
		Molam_Form_Store::step( 'rollback_prepared', $j );
		return self::run_rollback( Molam_Form_Store::$journal, microtime( true ) );
	}
}
